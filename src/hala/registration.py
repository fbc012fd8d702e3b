"""Register a HALA model folder as a new MLflow model version, tagged with its lineage.

The folder is logged as artifacts of a ``register-<name>`` run nested under the pipeline's parent
run, then becomes a version of the registered model (created on first use); the ``candidate``
alias moves to it. Promotion to ``champion`` is a separate, gated step (``hala promote``).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hala import registry, tracking
from hala.config import Preset

ARTIFACT_PATH = "model"


def _ensure_registered(client: MlflowClient, name: str, description: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # an auth or server error is not "absent"
            raise
        client.create_registered_model(name, description=description)


def register_model(
    model_dir: Path,
    name: str,
    parent_run_id: str,
    *,
    kfp_run_id: str,
    preset: Preset,
    role: str,
    base_model: str,
    base_revision: str,
    lineage: str,
) -> str:
    """Log ``model_dir``, create a version of ``name`` and point ``candidate`` at it; returns the version."""
    tags = {
        registry.TAG_PIPELINE_RUN: kfp_run_id,
        registry.TAG_MLFLOW_RUN: parent_run_id,
        registry.TAG_PRESET: preset.name,
        registry.TAG_PRESET_FINGERPRINT: preset.fingerprint(),
        registry.TAG_BASE_MODEL: base_model,
        registry.TAG_BASE_REVISION: base_revision,
        registry.TAG_DATA_LINEAGE: lineage,
        registry.TAG_ROLE: role,
    }
    with tracking.stage_run(parent_run_id, f"register-{name}") as run:
        mlflow.log_artifacts(str(model_dir), ARTIFACT_PATH)
        mlflow.set_tags(tags)
        client = tracking.registry_client()
        _ensure_registered(client, name, f"HALA {role} ({preset.name} preset), base {base_model}")
        version = client.create_model_version(
            name, source=f"runs:/{run.info.run_id}/{ARTIFACT_PATH}", run_id=run.info.run_id, tags=tags
        )
        client.set_registered_model_alias(name, registry.CANDIDATE_ALIAS, version.version)
        mlflow.log_params({"registered_model": name, "registered_version": version.version})
    return str(version.version)
