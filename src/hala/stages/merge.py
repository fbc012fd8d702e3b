"""Stage ``merge``: slerp each fine-tune with its base at ``merge.t`` (report section 2.6, MergeKit)."""

from __future__ import annotations

import shutil
from pathlib import Path

from hala.config import MergeConfig, Preset
from hala.stages.settings import StageSettings


class MergeSettings(StageSettings):
    """The student size and the merge method and factor."""

    role: str
    merge: MergeConfig


def settings(preset: Preset, *, role: str) -> MergeSettings:
    """The ``merge`` settings of one student size."""
    return MergeSettings(role=role, merge=preset.merge)


def run(settings: MergeSettings, finetuned_dir: str, base_dir: str, out_dir: str) -> None:
    """Merge into ``out_dir``; the MergeKit config goes to MLflow, the data lineage into the folder."""
    import mlflow

    from hala.merge import slerp_merge
    from hala.stages.context import open_stage
    from hala.stages.sft import LINEAGE_FILE

    with open_stage(f"merge-{settings.role}", inputs=[finetuned_dir, base_dir], outputs=[out_dir]):
        config = slerp_merge(Path(finetuned_dir), Path(base_dir), Path(out_dir), settings.merge.t)
        lineage = Path(finetuned_dir) / LINEAGE_FILE
        if lineage.is_file():
            shutil.copyfile(lineage, Path(out_dir) / LINEAGE_FILE)
        mlflow.log_params(
            {"merge.method": config["merge_method"], "merge.t": settings.merge.t, "merge.role": settings.role}
        )
        mlflow.log_dict(config, "merge/mergekit.yaml")
