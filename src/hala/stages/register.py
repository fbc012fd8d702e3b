"""Stage ``register``: a HALA model (a merged student, or the translator) as a new MLflow model version.

The version is tagged with its lineage (pipeline run, parent MLflow run, preset and fingerprint, base
model and revision, role, training data) and the alias ``candidate`` moves to it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from hala.config import ModelRef, Preset
from hala.stages.settings import StageSettings
from hala.stages.sft import TRANSLATOR


class RegisterSettings(StageSettings):
    """The role, the registered model's name, the base model and the preset's name."""

    role: str
    registered_name: str
    base: ModelRef
    preset: str


def settings(preset: Preset, *, role: str) -> RegisterSettings:
    """The ``register`` settings of the translator or one student size."""
    if role == TRANSLATOR:
        name, base = preset.translator.registered_name, preset.translator.base
    else:
        name, base = preset.students[role].registered_name, preset.students[role].base
    return RegisterSettings(role=role, registered_name=name, base=base, preset=preset.name)


@dataclass(frozen=True)
class Registered:
    """A registered model version."""

    name: str
    version: str


REGISTERED_FILE = "registered.json"


def run(settings: RegisterSettings, model_dir: str, out_dir: str) -> Registered:
    """Register ``model_dir``; the name and version, also written to ``out_dir`` for later stages."""
    from mlflow.tracking import MlflowClient

    from hala import registry, tracking
    from hala.registration import register_model
    from hala.stages.context import open_stage
    from hala.stages.sft import read_lineage

    lineage = read_lineage(model_dir)
    name = settings.registered_name
    role = "translator" if settings.role == TRANSLATOR else "student"
    with open_stage(f"register-{name}", inputs=[model_dir], outputs=[out_dir]) as stage:
        parent = MlflowClient(tracking.tracking_uri()).get_run(stage.parent_run_id)
        tags = {
            registry.TAG_PIPELINE_RUN: stage.context.run_id,
            registry.TAG_MLFLOW_RUN: stage.parent_run_id,
            registry.TAG_PRESET: settings.preset,
            registry.TAG_PRESET_FINGERPRINT: parent.data.params.get("preset_fingerprint", ""),
            registry.TAG_BASE_MODEL: settings.base.id,
            registry.TAG_BASE_REVISION: settings.base.revision,
            registry.TAG_DATA_LINEAGE: json.dumps(asdict(lineage) if lineage else {}, sort_keys=True),
            registry.TAG_ROLE: role,
        }
        description = f"HALA {role} ({settings.preset} preset), base {settings.base.id}"
        registered = Registered(name, register_model(Path(model_dir), name, stage.run_id, tags, description))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / REGISTERED_FILE).write_text(json.dumps(asdict(registered)) + "\n")
    return registered


def read_registered(folder: str | Path) -> Registered:
    """The model version a ``register`` task produced."""
    return Registered(**json.loads((Path(folder) / REGISTERED_FILE).read_text()))
