"""``hala cluster render``: the Kubernetes objects a run creates by itself, as YAML to review.

The compiled pipeline (``hala compile``) holds every task's pod; what a run creates on its own at run
time is one Kubeflow Trainer ``TrainJob`` per multi-node SFT (``training.nodes > 1``). This renders
them exactly as :func:`hala.stages.sft.run` builds them, so a platform engineer can review or
policy-check them (kubeconform, kyverno, conftest) before the first run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hala.config import Preset, TrainingConfig
from hala.training.launch import TRANSLATOR, sft_work_dir, trainer_release, trainjob_manifest, trainjob_name

EXAMPLE_KEY = (
    "0000000000000000"  # stands for an SFT task's work key, whose first 8 characters name its TrainJob
)


def sft_trainings(preset: Preset) -> dict[str, TrainingConfig]:
    """Every SFT of the preset by role: the translator, then each student size."""
    return {
        TRANSLATOR: preset.translator.training,
        **{size: student.training for size, student in preset.students.items()},
    }


def preset_trainjobs(
    preset: Preset,
    namespace: str,
    image: str,
    key: str = EXAMPLE_KEY,
    release: str | None = None,
) -> list[dict[str, Any]]:
    """The TrainJob of each multi-node SFT of ``preset``, as an SFT task with work key ``key`` creates it."""
    work_root = preset.cluster.work_root
    return [
        trainjob_manifest(
            trainjob_name(role, key),
            namespace,
            image,
            str(sft_work_dir(work_root, role, key) / "job.json"),
            cfg.nodes,
            preset.cluster,
            release,
        )
        for role, cfg in sft_trainings(preset).items()
        if cfg.nodes > 1
    ]


def write_manifests(manifests: list[dict[str, Any]], out_dir: Path, source: str) -> list[Path]:
    """Write each object to ``<out_dir>/<kind>-<name>.yaml``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for manifest in manifests:
        path = out_dir / f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
        header = f"# Rendered by `hala cluster render` from {source}; created by the run itself.\n"
        path.write_text(header + yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    return written


def render_preset(
    preset: Preset, out_dir: Path, namespace: str, image: str, release: str | None = None
) -> list[Path]:
    """Render the preset's run-time objects into ``out_dir``; returns the files (none: it creates none)."""
    chosen = trainer_release(preset.cluster, release)
    source = f"preset {preset.name} for Kubeflow Trainer {chosen}"
    return write_manifests(preset_trainjobs(preset, namespace, image, release=chosen), out_dir, source)
