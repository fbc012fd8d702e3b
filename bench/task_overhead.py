"""Benchmark: the fixed cost of one pipeline task (interpreter start and imports) against its work.

    python bench/task_overhead.py              # 3 runs of each, best kept
    python bench/task_overhead.py --repeats 5

Every KFP task starts a Python interpreter that runs KFP's executor, imports its component module and
the stage function's modules, and connects to MLflow. This prints, for each of those steps, the
wall time of a fresh interpreter doing it (the best of ``--repeats`` runs, since this machine's speed
varies), so a change that makes a data task import torch, say, shows up as a number.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'step':<42}{'seconds':>9}  heavy modules imported")
    for name, code in STEPS:
        heavy = " ".join(heavy_modules(code)) if name not in {"torch", "transformers"} else ""
        print(f"{name:<42}{seconds(code, args.repeats):9.2f}  {heavy or '-'}")


if __name__ == "__main__":
    main()
