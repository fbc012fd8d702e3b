-- Run once by the postgres image on an empty data directory: basic-auth keeps its users apart
-- from the tracking tables (both use an alembic_version table, so they cannot share a database).
CREATE DATABASE mlflow_auth;
