#!/usr/bin/env bash
# System packages the test suite needs beyond Python: the PostgreSQL server (initdb, pg_ctl) for the
# MLflow-on-PostgreSQL tests. Installed with apt where missing; without apt, those tests skip and say why.
set -euo pipefail
if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
else
  echo "note: no PostgreSQL server binaries and no root apt-get: the MLflow-on-PostgreSQL tests will skip" >&2
fi
