"""Benchmark: what a rerun pays for (issue 12), on the tiny preset through kfp.local, and task input sizes.

    python bench/cache.py                 # four local runs in a temporary folder (several minutes)
    python bench/cache.py --inputs-only   # only the compiled pipelines' input sizes (seconds)

1. a cold run (nothing cached), 2. the identical rerun, 3. a rerun with one gate changed, 4. a rerun
with the tiny student's learning rate changed: wall time, and how many tasks executed (not reused
from the cache), by component. Then, for the compiled cluster pipelines, the largest input parameter
any task takes: the constants compiled in, and the settings slices the run's first task hands out at
run time (before: the whole preset, in every task).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import yaml

from hala.config import load_preset
from hala.stages.settings import slice_preset
from hala_pipelines.compile import CLUSTER_PRESETS, COMPILED_DIR
from hala_pipelines.graph import plan_slices
from hala_pipelines.local import LocalRun, run_local


def folded(result: LocalRun) -> dict[str, int]:
    """Executed tasks counted by component (loop iterations and numbered copies folded)."""
    return dict(Counter(name.split("-iteration-")[0].rstrip("-0123456789") for name in result.executed()))


def local_runs(workdir: Path) -> None:
    """The four runs, one after the other in one workdir (one cache, one MLflow store)."""
    os.chdir(workdir)
    cases = [
        ("cold", {}),
        ("identical rerun", {}),
        ("gate_max_task_drop 3.0 -> 5.0", {"gate_max_task_drop": 5.0}),
        ("sft_tiny_learning_rate 1e-3 -> 2e-3", {"sft_tiny_learning_rate": 2e-3}),
    ]
    cold = 0.0
    print(f"{'run':<38}{'seconds':>9}{'of cold':>9}{'executed':>10}  executed by component")
    for name, params in cases:
        result = run_local("tiny", workdir / "runs", run_name=name.split()[0], params=params)
        cold = cold or result.seconds
        ran = f"{len(result.executed())} of {len(result.tasks)}"
        print(f"{name:<38}{result.seconds:9.1f}{result.seconds / cold:9.0%}{ran:>10}  {folded(result)}")


def input_sizes() -> None:
    """The largest task input of each compiled cluster pipeline, and of the slices a run hands out."""
    print(f"\n{'preset':<8}{'largest constant input':>24}{'largest slice':>15}{'whole preset':>14}  (bytes)")
    for preset in CLUSTER_PRESETS:
        pipeline, _ = yaml.safe_load_all((COMPILED_DIR / f"{preset}.yaml").read_text())
        largest = 0
        for component in [pipeline["root"], *pipeline["components"].values()]:
            for task in component.get("dag", {}).get("tasks", {}).values():
                for value in task.get("inputs", {}).get("parameters", {}).values():
                    largest = max(largest, len(json.dumps(value).encode()))
        loaded = load_preset(preset)
        slices = slice_preset(loaded, plan_slices(loaded))
        biggest = max(len(text.encode()) for text in slices.values())
        print(f"{preset:<8}{largest:>24}{biggest:>15}{len(loaded.to_json().encode()):>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs-only", action="store_true", help="skip the local runs")
    args = parser.parse_args()
    if not args.inputs_only:
        with tempfile.TemporaryDirectory(prefix="hala-bench-cache-") as tmp:
            local_runs(Path(tmp))
    input_sizes()


if __name__ == "__main__":
    main()
