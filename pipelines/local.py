"""Run the pipeline on this machine through KFP's local runner (the embedded default)."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import local
from kfp.local.orchestrator import task_executor
from kfp.pipeline_spec import pipeline_spec_pb2

from hala import tracking
from hala.config import load_preset, preset_file_hash
from hala.sources import SOURCES
from hala_pipelines.graph import build_pipeline


@dataclass(frozen=True)
class TaskTime:
    """One task of a local run: its name, wall time (interpreter start included) and final status."""

    name: str
    seconds: float
    status: str


@dataclass
class LocalRun:
    """Where a local run left its outputs, and how long each task took."""

    run_name: str
    pipeline_root: Path
    tracking_uri: str
    experiment: str
    seconds: float
    tasks: list[TaskTime] = field(default_factory=list)

    def slowest(self, n: int = 10) -> list[TaskTime]:
        """The ``n`` tasks with the longest wall time, longest first."""
        return sorted(self.tasks, key=lambda t: -t.seconds)[:n]


def count_tasks(spec: pipeline_spec_pb2.PipelineSpec) -> int:
    """Container tasks a run of ``spec`` executes: each loop body counted once per iteration."""

    def count(dag: pipeline_spec_pb2.DagSpec, times: int) -> int:
        total = 0
        for task in dag.tasks.values():
            component = spec.components[task.component_ref.name]
            n = times
            if task.WhichOneof("iterator") == "parameter_iterator":
                n *= len(json.loads(task.parameter_iterator.items.raw))
            total += count(component.dag, n) if component.WhichOneof("implementation") == "dag" else n
        return total

    return count(spec.root.dag, 1)


class _TaskClock:
    """Times every task the local runner dispatches and prints a line as each one ends."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tasks: list[TaskTime] = []
        self.start = time.perf_counter()
        self.lock = threading.Lock()

    def wrap(self, run: Callable[..., Any]) -> Callable[..., Any]:
        """``task_executor.execute_single_task``, timed (a cache hit too)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            name = str(kwargs["task_name"])
            begin = time.perf_counter()
            outputs, status = run(*args, **kwargs)
            self.record(TaskTime(name, time.perf_counter() - begin, str(status.name)))
            return outputs, status

        return timed

    def record(self, task: TaskTime) -> None:
        """Keep the task's time and print the progress line."""
        with self.lock:
            self.tasks.append(task)
            done, elapsed = len(self.tasks), time.perf_counter() - self.start
        mark = "" if task.status == "SUCCESS" else f" {task.status}"
        print(
            f"[{done}/{self.total}] {task.name} {task.seconds:.1f} s{mark} (elapsed {elapsed:.0f} s)",
            file=sys.stderr,
            flush=True,
        )


@contextlib.contextmanager
def _timed_tasks(total: int) -> Iterator[_TaskClock]:
    """Time the local runner's tasks while the context is open."""
    clock = _TaskClock(total)
    original = task_executor.execute_single_task
    task_executor.execute_single_task = clock.wrap(original)
    try:
        yield clock
    finally:
        task_executor.execute_single_task = original


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
    main = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    previous_term = signal.signal(signal.SIGTERM, _interrupt) if main else None  # SIGTERM acts as Ctrl-C
    try:
        with _timed_tasks(count_tasks(pipeline.pipeline_spec)) as clock:
            pipeline(run_name=run_name, work_root=str(workdir / "work"))
    except KeyboardInterrupt:
        killed = tracking.kill_open_runs(preset.tracking.experiment, run_name)
        print(f"\ninterrupted: {len(killed)} MLflow run(s) of '{run_name}' ended as KILLED", file=sys.stderr)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous_term)
        # KFP 2.17 indents print() while a task runs by swapping builtins.print; loop iterations
        # running side by side restore it out of order and leave it indenting. Put it back.
        builtins.print = original_print
    return LocalRun(
        run_name=run_name,
        pipeline_root=pipeline_root,
        tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
        experiment=preset.tracking.experiment,
        seconds=time.perf_counter() - start,
        tasks=clock.tasks,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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
