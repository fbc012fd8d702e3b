"""Register a HALA model folder as a new MLflow model version, tagged with its lineage.

The folder is logged as artifacts of the ``register-<name>`` stage run (``hala.stages.register``),
then becomes a version of the registered model (created on first use); the ``candidate``
alias moves to it. Promotion to ``champion`` is a separate, gated step (``hala promote``).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hala import registry, tracking

ARTIFACT_PATH = "model"


def _ensure_registered(client: MlflowClient, name: str, description: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # an auth or server error is not "absent"
            raise
        client.create_registered_model(name, description=description)


def register_model(model_dir: Path, name: str, run_id: str, tags: dict[str, str], description: str) -> str:
    """Log ``model_dir`` on the open stage run ``run_id`` as a new version of ``name``; returns the version.

    The version is tagged ``tags`` and the alias ``candidate`` moves to it.
    """
    mlflow.log_artifacts(str(model_dir), ARTIFACT_PATH)
    mlflow.set_tags(tags)
    client = tracking.registry_client()
    _ensure_registered(client, name, description)
    version = client.create_model_version(
        name, source=f"runs:/{run_id}/{ARTIFACT_PATH}", run_id=run_id, tags=tags
    )
    client.set_registered_model_alias(name, registry.CANDIDATE_ALIAS, version.version)
    mlflow.log_params({"registered_model": name, "registered_version": version.version})
    return str(version.version)
