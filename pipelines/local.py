"""Run the pipeline on this machine through KFP's local runner (the embedded default)."""

from __future__ import annotations

import builtins
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    # The local runner runs loop iterations side by side: one math thread per task keeps them from
    # oversubscribing the cores (measured: 2 threads x 2 tasks on 2 cores ran several times slower).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run_name = run_name or f"{preset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    pipeline_root = workdir / "pipeline-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    pipeline = build_pipeline(preset, preset_file_hash(preset_name))
    start = time.perf_counter()
    original_print = builtins.print
    try:
        pipeline(run_name=run_name, work_root=str(workdir / "work"))
    finally:
        # KFP 2.17 indents print() while a task runs by swapping builtins.print; loop iterations
        # running side by side restore it out of order and leave it indenting. Put it back.
        builtins.print = original_print
    return LocalRun(
        run_name=run_name,
        pipeline_root=pipeline_root,
        tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
        experiment=preset.tracking.experiment,
        seconds=time.perf_counter() - start,
    )


def _newest_run(pipeline_root: Path) -> Path | None:
    """The folder of the newest run under a local pipeline root."""
    runs = sorted((p for p in pipeline_root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def source_counts(pipeline_root: Path) -> list[dict[str, object]]:
    """The counts.json of every prepared source of the newest run under a local pipeline root."""
    run = _newest_run(pipeline_root)
    if run is None:
        return []
    counts = [json.loads(p.read_text()) for p in run.glob("prepare-source-op*/prepared/counts.json")]
    order = list(SOURCES)
    return sorted(counts, key=lambda c: order.index(str(c["source"])))


def stage_counts(pipeline_root: Path) -> dict[str, dict[str, Any]]:
    """Counts of the newest run's translation stages, summed over shards, by stage name."""
    run = _newest_run(pipeline_root)
    totals: dict[str, dict[str, Any]] = {}
    for path in sorted(run.rglob("*.json")) if run else []:
        if path.name not in {"counts.json", "validation.json"} or "prepare-source-op" in str(path):
            continue
        counts = json.loads(path.read_text())
        stage = str(counts.pop("stage", "quantize" if path.name == "validation.json" else path.parent.name))
        total = totals.setdefault(stage, {})
        for key, value in counts.items():
            if isinstance(value, dict):
                merged = total.setdefault(key, {})
                for k, v in value.items():
                    merged[k] = merged.get(k, 0) + v
            elif isinstance(value, int | float) and key not in {"shard", "seconds"}:
                total[key] = total.get(key, 0) + value
    return totals


def report_tables(pipeline_root: Path) -> list[str]:
    """The newest run's report tables (Table 1 per student size, then Table 2) as markdown."""
    run = _newest_run(pipeline_root)
    if run is None:
        return []
    tables = sorted(run.glob("benchmark-report-op*/table")) + sorted(run.glob("translation-report-op*/table"))
    return [t.read_text(encoding="utf-8") for t in tables]
