"""Benchmark: the fixed cost of one pipeline task (interpreter start and imports) against its work.

    python bench/task_overhead.py              # 3 runs of each, best kept
    python bench/task_overhead.py --repeats 5
    python bench/task_overhead.py --tasks-only # only the whole-task figures (cold vs warm start)

Every KFP task starts a Python interpreter that runs KFP's executor, imports its component module and
the stage function's modules, and connects to MLflow. This prints, for each of those steps, the
wall time of a fresh interpreter doing it (the best of ``--repeats`` runs, since this machine's speed
varies), so a change that makes a data task import torch, say, shows up as a number.

Then it times whole tasks through KFP's local runner, as ``hala run`` starts them: a data-like task
(KFP's executor, MLflow, one query to a sqlite store) and a model-like one (the same, plus torch and
transformers), each started cold (a fresh interpreter, KFP's own way) and warm (forked by
``hala_pipelines.warm_start``, after its idle imports are done).
(No ``from __future__ import annotations`` here: KFP reads the component's annotations as types.)
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kfp import dsl, local

from hala_pipelines.local import started_warm

STEPS = (
    ("interpreter", "pass"),
    ("kfp executor", "import kfp.dsl.executor_main"),
    ("mlflow", "import mlflow"),
    (
        "component modules",
        "import hala_components.run, hala_components.data, hala_components.translate, "
        "hala_components.training, hala_components.evaluation",
    ),
    ("stage context (every stage opens its run)", "import hala.stages.context"),
    (
        "settings task (slices every stage)",
        "from hala.config import load_preset; from hala.stages.settings import slice_preset; "
        "from hala_pipelines.graph import plan_slices; "
        "p = load_preset('tiny'); slice_preset(p, plan_slices(p))",
    ),
    ("stage prepare", "import hala.stages.prepare, hala.prepare"),
    (
        "stage teacher/judge/corpus_translate",
        "import hala.stages.teacher, hala.stages.judge, hala.stages.corpus_translate",
    ),
    ("stage sft", "import hala.stages.sft"),
    ("stage evaluate", "import hala.stages.evaluate"),
    ("stage reports", "import hala.stages.benchmark_report, hala.stages.translation_report"),
    ("run report (finish)", "import hala.run_report"),
    ("torch", "import torch"),
    ("transformers", "import transformers"),
)


def seconds(code: str, repeats: int) -> float:
    """Best wall time of a fresh interpreter running ``code``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def heavy_modules(code: str) -> list[str]:
    """Which of torch, transformers, datasets, lighteval, scipy ``code`` pulls in."""
    names = ("torch", "transformers", "datasets", "lighteval", "scipy")
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {names!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return done.stdout.split()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def probe_task(model_task: bool) -> str:
    """What a stage task does before its work: import its libraries and reach the MLflow store."""
    from mlflow.tracking import MlflowClient

    if model_task:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    return str(len(MlflowClient().search_experiments()))


def task_seconds(model_task: bool, repeats: int) -> float:
    """Best wall time of one ``probe_task`` through the local runner (set up by the caller)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        probe_task(model_task=model_task)
        best = min(best, time.perf_counter() - start)
    return best


def whole_tasks(repeats: int) -> None:
    """Print cold and warm start of a data-like and a model-like task."""
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # as hala run sets it
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(Path(folder) / "root"))
        probe_task(model_task=False)  # creates the store's tables once
        cold = {kind: task_seconds(kind, repeats) for kind in (False, True)}
        with started_warm():
            probe_task(model_task=True)  # waits while the starter imports
            time.sleep(15)  # its idle imports (torch, transformers, datasets) finish
            warm = {kind: task_seconds(kind, repeats) for kind in (False, True)}
    print(f"\n{'whole task through the local runner':<42}{'cold':>9}{'warm':>9}")
    for kind, name in (
        (False, "data-like (KFP, MLflow, one query)"),
        (True, "model-like (+ torch, transformers)"),
    ):
        print(f"{name:<42}{cold[kind]:9.2f}{warm[kind]:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks-only", action="store_true", help="only the whole-task figures")
    args = parser.parse_args()
    if not args.tasks_only:
        print(f"{'step':<42}{'seconds':>9}  heavy modules imported")
        for name, code in STEPS:
            heavy = " ".join(heavy_modules(code)) if name not in {"torch", "transformers"} else ""
            print(f"{name:<42}{seconds(code, args.repeats):9.2f}  {heavy or '-'}")
    whole_tasks(args.repeats)


if __name__ == "__main__":
    main()
