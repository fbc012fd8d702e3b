"""Run the pipeline on this machine through KFP's local runner (the embedded default).

Tasks run as processes of this interpreter and inherit its environment: ``hala run`` sets the
pipeline run's id (``HALA_RUN_ID``), the work folder and the MLflow store there. Each is forked from a
warm starter that has imported the stack once (:mod:`hala_pipelines.warm_start`), and independent tasks
run side by side, one per core (:mod:`hala_pipelines.local_dag`). KFP's local cache
is on by default (``cache=False`` turns it off): a task whose settings and inputs did not change is
reused from an earlier run in the same workdir, and its MLflow stage run is linked as reused.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import local
from kfp.local import subprocess_task_handler, task_dispatcher
from kfp.local.orchestrator import task_executor
from kfp.pipeline_spec import pipeline_spec_pb2

from hala import tracking
from hala.config import load_preset, preset_file_hash
from hala.run_params import apply_overrides
from hala.stages.context import ENV_RUN_ID, ENV_WORK_ROOT
from hala_pipelines.graph import build_pipeline
from hala_pipelines.local_dag import concurrent_dags, limit_tasks
from hala_pipelines.warm_start import Starter, executor_argv, run_task, warm_tasks


@dataclass(frozen=True)
class TaskTime:
    """One task of a local run: its name, wall time, final status, and whether it ran or was cached."""

    name: str
    seconds: float
    status: str
    executed: bool = True


@dataclass
class LocalRun:
    """Where a local run left its outputs, and how long each task took."""

    run_name: str
    run_id: str  # the pipeline run's id (HALA_RUN_ID), the parent MLflow run's tag
    pipeline_root: Path
    tracking_uri: str
    experiment: str
    seconds: float
    tasks: list[TaskTime] = field(default_factory=list)
    run_folder: Path | None = None  # this run's outputs under the pipeline root (kfp.local names it)

    def slowest(self, n: int = 10) -> list[TaskTime]:
        """The ``n`` tasks with the longest wall time, longest first."""
        return sorted(self.tasks, key=lambda t: -t.seconds)[:n]

    def executed(self) -> list[str]:
        """The tasks that ran (not reused from the cache), in the order they ended."""
        return [t.name for t in self.tasks if t.executed]

    def report_page(self) -> Path | None:
        """The run's report page (the finish task's HTML output), when it was written."""
        page = self.run_folder / "finish-op" / "report" if self.run_folder else None
        return page if page is not None and page.is_file() else None


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
    """Times every task the local runner dispatches, notes cache hits, prints a line as each ends."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tasks: list[TaskTime] = []
        self.start = time.perf_counter()
        self.lock = threading.Lock()
        self.ran = threading.local()  # set when this thread's task really executes

    def wrap(self, run: Callable[..., Any]) -> Callable[..., Any]:
        """``task_executor.execute_single_task``, timed (a cache hit too)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            name = str(kwargs["task_name"])
            self.ran.value = False
            begin = time.perf_counter()
            outputs, status = run(*args, **kwargs)
            self.record(TaskTime(name, time.perf_counter() - begin, str(status.name), self.ran.value))
            return outputs, status

        return timed

    def mark(self, run: Callable[..., Any]) -> Callable[..., Any]:
        """``task_dispatcher.run_single_task_implementation``: called only when a task executes."""

        def executing(*args: Any, **kwargs: Any) -> Any:
            self.ran.value = True
            return run(*args, **kwargs)

        return executing

    def record(self, task: TaskTime) -> None:
        """Keep the task's time and print the progress line."""
        with self.lock:
            self.tasks.append(task)
            done, elapsed = len(self.tasks), time.perf_counter() - self.start
        mark = "" if task.status == "SUCCESS" else f" {task.status}"
        how = "" if task.executed else " (cached)"
        # Not print(): KFP indents print() while a task runs (and side by side tasks leave it indenting).
        sys.stderr.write(
            f"[{done}/{self.total}] {task.name} {task.seconds:.1f} s{how}{mark} (elapsed {elapsed:.0f} s)\n"
        )
        sys.stderr.flush()


@contextlib.contextmanager
def _timed_tasks(total: int, slots: int) -> Iterator[_TaskClock]:
    """Time the local runner's tasks, at most ``slots`` at once, independent ones side by side.

    Each task starts from a warm interpreter (:mod:`hala_pipelines.warm_start`).
    """
    clock = _TaskClock(total)
    original, dispatch = task_executor.execute_single_task, task_dispatcher.run_single_task_implementation
    task_executor.execute_single_task = limit_tasks(clock.wrap(original), slots)
    task_dispatcher.run_single_task_implementation = clock.mark(dispatch)
    try:
        with concurrent_dags(), started_warm():
            yield clock
    finally:
        task_executor.execute_single_task = original
        task_dispatcher.run_single_task_implementation = dispatch


@contextlib.contextmanager
def started_warm() -> Iterator[Starter]:
    """While open, KFP's local runner starts component tasks from a warm starter (yielded)."""
    spawn = subprocess_task_handler.run_local_subprocess
    with warm_tasks() as starter:
        subprocess_task_handler.run_local_subprocess = _through(starter, spawn)
        try:
            yield starter
        finally:
            subprocess_task_handler.run_local_subprocess = spawn


def _through(starter: Starter, spawn: Callable[..., int]) -> Callable[..., int]:
    """KFP's ``run_local_subprocess``, through ``starter`` wherever it takes the command."""

    def run(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        component = executor_argv(full_command)
        if component is None or not starter.alive():
            return int(spawn(full_command=full_command, env_vars=env_vars))
        code = run_task(starter.path, component, {**os.environ, **(env_vars or {})}, _echo)
        print("\n")  # as KFP separates a task's output from what follows
        return code

    return run


def _echo(line: str) -> None:
    print(line, end="")  # KFP's print while a task runs (it indents the task's lines)


def run_local(
    preset_name: str,
    workdir: Path,
    run_name: str = "",
    overrides: Mapping[str, Any] | None = None,
    cache: bool = True,
    params: Mapping[str, Any] | None = None,
) -> LocalRun:
    """Run a preset's pipeline with ``SubprocessRunner(use_venv=False)``; tasks inherit this environment.

    ``overrides`` (dotted keys, as ``hala run --set``) change the preset before it is compiled, so
    they may also change the graph's shape; ``params`` are run parameters, as the Kubeflow UI sets
    them (``overrides`` among them).
    """
    preset = load_preset(preset_name)
    if overrides:
        preset = apply_overrides(preset, overrides, compile_time=True)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = f"local-{uuid.uuid4().hex}"
    # Tasks run `python3` from PATH: make it this interpreter so they see the installed hala.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking.tracking_uri()
    os.environ[ENV_RUN_ID] = run_id
    os.environ[ENV_WORK_ROOT] = str(workdir / "work")
    # The local runner runs loop iterations side by side: one math thread per task keeps them from
    # oversubscribing the cores (measured: 2 threads x 2 tasks on 2 cores ran several times slower).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # vLLM's CPU build pins each engine to core 0 unless told not to: tasks side by side would share it.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    run_name = run_name or f"{preset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    pipeline_root = workdir / "pipeline-root"
    runner = local.SubprocessRunner(use_venv=False)
    local.init(runner=runner, pipeline_root=str(pipeline_root), enable_caching=cache)
    pipeline = build_pipeline(preset, preset_file_hash(preset_name))
    earlier = set(pipeline_root.iterdir()) if pipeline_root.is_dir() else set()
    start = time.perf_counter()
    original_print = builtins.print
    main = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    previous_term = signal.signal(signal.SIGTERM, _interrupt) if main else None  # SIGTERM acts as Ctrl-C
    try:
        slots = os.cpu_count() or 1  # task processes at once: one per core (one more measured no faster)
        with _timed_tasks(count_tasks(pipeline.pipeline_spec), slots) as clock:  # type: ignore[attr-defined]
            pipeline(run_name=run_name, **(params or {}))
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
        run_id=run_id,
        pipeline_root=pipeline_root,
        tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
        experiment=preset.tracking.experiment,
        seconds=time.perf_counter() - start,
        tasks=clock.tasks,
        run_folder=next(
            iter(sorted(set(pipeline_root.iterdir()) - earlier - {pipeline_root / ".kfp_cache"})), None
        ),
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
