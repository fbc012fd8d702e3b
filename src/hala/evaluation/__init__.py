"""Evaluate stage: LightEval's OALL v2 Arabic tasks (six benchmarks) on a model, per-benchmark scores."""

from __future__ import annotations

from hala.evaluation.benchmarks import (
    BENCHMARK_KEYS,
    BENCHMARKS,
    BenchmarkSpec,
    get_benchmark,
    lighteval_configs,
)
from hala.evaluation.lighteval_runner import (
    EvalReport,
    EvalSettings,
    VllmOptions,
    evaluate_model,
    run_evaluation,
)
from hala.evaluation.local_data import EvalDataError, local_task_configs
from hala.evaluation.offline import prepare_lighteval_offline

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_KEYS",
    "BenchmarkSpec",
    "EvalDataError",
    "EvalReport",
    "EvalSettings",
    "VllmOptions",
    "evaluate_model",
    "get_benchmark",
    "lighteval_configs",
    "local_task_configs",
    "prepare_lighteval_offline",
    "run_evaluation",
]
