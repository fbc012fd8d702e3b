"""Stage ``fetch``: one model as a ``save_pretrained`` folder (a hub snapshot, or a tiny model)."""

from __future__ import annotations

from pathlib import Path

from hala.config import ModelRef, Preset
from hala.stages.settings import StageSettings


class FetchSettings(StageSettings):
    """Which model, at which revision; the seed builds a tiny model's weights."""

    model: ModelRef
    seed: int


def model_ref(preset: Preset, role: str) -> ModelRef:
    """The model a role names: ``teacher``, ``judge``, ``translator_base`` or a student size."""
    fixed = {
        "teacher": preset.teacher.model,
        "judge": preset.judge.model,
        "translator_base": preset.translator.base,
    }
    return fixed[role] if role in fixed else preset.students[role].base


def settings(preset: Preset, *, role: str) -> FetchSettings:
    """The ``fetch`` settings of one role's model."""
    return FetchSettings(model=model_ref(preset, role), seed=preset.seed)


def run(settings: FetchSettings, out_dir: str | Path) -> ModelRef:
    """Materialise the model at ``out_dir`` (never runs remote code); returns what was fetched."""
    from hala.models import fetch_model

    fetch_model(settings.model, Path(out_dir), seed=settings.seed)
    return settings.model
