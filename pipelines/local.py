"""Run the pipeline on this machine through KFP's local runner (the embedded default)."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kfp import local

from hala import tracking
from hala.config import load_preset, preset_file_hash
from hala.sources import SOURCES
from hala_pipelines.graph import build_pipeline


@dataclass
class LocalRun:
    """Where a local run left its outputs."""

    run_name: str
    pipeline_root: Path
    tracking_uri: str
    experiment: str
    seconds: float


def run_local(preset_name: str, workdir: Path, run_name: str = "") -> LocalRun:
    """Run a preset's pipeline with ``SubprocessRunner(use_venv=False)``; tasks inherit this environment."""
    preset = load_preset(preset_name)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # Tasks run `python3` from PATH: make it this interpreter so they see the installed hala.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking.tracking_uri()
    run_name = run_name or f"{preset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    pipeline_root = workdir / "pipeline-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    pipeline = build_pipeline(preset, preset_file_hash(preset_name))
    start = time.perf_counter()
    pipeline(run_name=run_name)
    return LocalRun(
        run_name=run_name,
        pipeline_root=pipeline_root,
        tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
        experiment=preset.tracking.experiment,
        seconds=time.perf_counter() - start,
    )


def source_counts(pipeline_root: Path) -> list[dict[str, object]]:
    """The counts.json of every prepared source of the newest run under a local pipeline root."""
    runs = sorted((p for p in pipeline_root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not runs:
        return []
    counts = [json.loads(p.read_text()) for p in runs[-1].rglob("counts.json")]
    order = list(SOURCES)
    return sorted(counts, key=lambda c: order.index(str(c["source"])))
