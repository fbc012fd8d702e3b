"""What ``hala run`` prints when a local run ends, read from MLflow (reused stages included).

A cached task writes nothing in this run's folder, but its stage run is linked under this run's
parent MLflow run with its figures; so the counts come from MLflow, and the report tables from the
report tasks, which run in every run.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hala import tracking
from hala.sources import SOURCES
from hala_pipelines.local import LocalRun

_SHARD_STAGE = re.compile(r"^(teacher_translate|judge_filter|corpus_translate-[a-z0-9_]+)-\d+$")
_COUNTS = re.compile(r"^(read|kept|quarantined|resumed)(\..+)?$|^verdict\.(accept|reject|unreadable)$")


def stage_runs(run: LocalRun) -> list[Run]:
    """Every stage run (executed or reused) under the local run's parent MLflow run, in its store."""
    client = MlflowClient(run.tracking_uri)
    parent = tracking.find_pipeline_run(run.experiment, run.run_id, client)
    if parent is None:
        return []
    experiment_id = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent}'", max_results=50000)


def source_counts(runs: list[Run]) -> list[dict[str, object]]:
    """Rows read, kept and quarantined by reason of every prepared source, in registry order."""
    counts = []
    for key in SOURCES:
        found = [r for r in runs if r.info.run_name == f"prepare-{key}"]
        if not found:
            continue
        metrics = found[0].data.metrics
        reasons = {
            name.removeprefix(f"{key}.quarantined."): int(value)
            for name, value in metrics.items()
            if name.startswith(f"{key}.quarantined.")
        }
        read, kept = int(metrics.get(f"{key}.read", 0)), int(metrics.get(f"{key}.kept", 0))
        counts.append({"source": key, "read": read, "kept": kept, "quarantined": reasons})
    return counts


def shard_totals(runs: list[Run]) -> dict[str, dict[str, float]]:
    """The fan-out stages' counts (read, kept, quarantined by reason, verdicts), summed over shards."""
    totals: dict[str, dict[str, float]] = defaultdict(dict)
    for r in runs:
        match = _SHARD_STAGE.match(r.info.run_name or "")
        if not match:
            continue
        total = totals[match.group(1)]
        prefix = f"corpus.{match.group(1).split('-', 1)[1]}." if "-" in match.group(1) else ""
        for name, value in r.data.metrics.items():
            key = name.removeprefix(prefix) if prefix else name.split(".", 1)[-1]
            if _COUNTS.match(key):
                total[key] = total.get(key, 0) + value
    return dict(sorted(totals.items()))


def report_tables(run: LocalRun) -> list[str]:
    """The run's report tables (Table 1 per student size, then Table 2) as markdown."""
    folder = run.run_folder
    if folder is None:
        return []
    tables = sorted(folder.glob("benchmark-report-op*/table")) + sorted(
        folder.glob("translation-report-op*/table")
    )
    return [t.read_text(encoding="utf-8") for t in tables]


def report_copy(run: LocalRun) -> Path | None:
    """The run's report page copied beside its outputs as ``<run name>.html``, to open in a browser."""
    page = run.report_page()
    if page is None:
        return None
    copy = run.pipeline_root.parent / f"{run.run_name}.html"
    shutil.copyfile(page, copy)
    return copy


def reused(runs: list[Run]) -> int:
    """How many stage runs of this run were reused from earlier runs."""
    return sum(1 for r in runs if r.data.tags.get("hala.reused_from"))


def print_summary(run: LocalRun) -> None:
    """The run's sources, fan-out counts, tables, slowest tasks and where things are, on stdout."""
    import json

    runs = stage_runs(run)
    executed = len(run.executed())
    print(
        f"\npipeline finished in {run.seconds:.1f} s: {executed} of {len(run.tasks)} tasks ran, "
        f"{len(run.tasks) - executed} reused from the cache ({reused(runs)} reused stage runs in MLflow)"
    )
    print(f"{'source':<16}{'read':>8}{'kept':>8}  quarantined")
    for counts in source_counts(runs):
        print(f"{counts['source']:<16}{counts['read']:>8}{counts['kept']:>8}  {counts['quarantined'] or '-'}")
    for stage, counts in shard_totals(runs).items():
        print(f"{stage}: {json.dumps({k: int(v) for k, v in counts.items()}, sort_keys=True)}")
    for table in report_tables(run):
        print(f"\n{table}")
    print("\nslowest tasks (wall time, interpreter start included):")
    for task in run.slowest(10):
        print(f"  {task.seconds:7.1f} s  {task.name}{'' if task.executed else ' (cached)'}")
    print(f"outputs:        {run.pipeline_root}")
    print(f"report:         {report_copy(run) or '(not written)'}")
    where = f"experiment '{run.experiment}', run '{run.run_name}'"
    print(f"MLflow:         {tracking.mask_uri(run.tracking_uri)} ({where})")
    print(f"browse MLflow:  .venv/bin/mlflow ui --backend-store-uri {tracking.mask_uri(run.tracking_uri)}")
