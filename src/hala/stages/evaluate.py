"""Stage ``evaluate``: the six Arabic benchmarks through LightEval on one model (report Table 1).

Each student size is evaluated three times: its base, the fine-tune before merging, and the merged
HALA model. Zero-shot, length-normalised log-likelihood accuracy; vLLM on the cluster, transformers
on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from hala.config import EngineConfig, Preset
from hala.stages.settings import StageSettings

if TYPE_CHECKING:
    from hala.evaluation.lighteval_runner import EvalReport

VARIANTS = ("base", "finetuned", "merged")
PARAMS_FILE = "params.json"  # the model's parameter count, beside its scores


class EvaluateSettings(StageSettings):
    """The model evaluated (size and variant), the benchmarks, where they are read and the engine."""

    role: str
    variant: str
    benchmarks: list[str]
    data_root: str | None
    max_samples: int | None
    engine: EngineConfig


def settings(preset: Preset, *, role: str, variant: str) -> EvaluateSettings:
    """The ``evaluate`` settings of one model of one student size."""
    cfg = preset.eval
    return EvaluateSettings(
        role=role,
        variant=variant,
        benchmarks=cfg.benchmarks,
        data_root=cfg.data_root,
        max_samples=cfg.max_samples,
        engine=cfg.engine,
    )


def run(settings: EvaluateSettings, model_dir: str, out_dir: str) -> EvalReport:
    """Score the model on every benchmark; ``scores.json`` in ``out_dir``."""
    import mlflow

    from hala.evaluation.lighteval_runner import EvalSettings, VllmOptions, run_evaluation
    from hala.evaluation.report import count_parameters
    from hala.stages.context import open_stage

    engine = settings.engine
    options = EvalSettings(
        backend="vllm" if engine.kind == "vllm" else "transformers",
        data_root=settings.data_root,
        max_samples=settings.max_samples,
        batch_size=engine.batch_size,
        vllm=VllmOptions(
            tensor_parallel_size=engine.tensor_parallel_size,
            gpu_memory_utilization=engine.gpu_memory_utilization,
            max_model_length=engine.max_model_len,
            enable_prefix_caching=engine.enable_prefix_caching,
        ),
    )
    name = f"evaluate-{settings.role}-{settings.variant}"
    with open_stage(name, inputs=[model_dir], outputs=[out_dir]) as stage:
        report = run_evaluation(model_dir, Path(out_dir), settings.benchmarks, options)
        params = count_parameters(model_dir)  # Table 1's Params column
        (Path(out_dir) / PARAMS_FILE).write_text(json.dumps({"params": params}) + "\n")
        mlflow.log_params(
            {
                "eval.role": settings.role,
                "eval.variant": settings.variant,
                "eval.backend": options.backend,
            }
        )
        stage.log_metrics({"eval.parameters": params})
        stage.log_metrics({f"eval.{k}": v for k, v in report.scores.items()})
        stage.log_metrics({f"eval.samples.{k}": v for k, v in report.samples.items()})
        mlflow.log_artifact(str(Path(out_dir) / "scores.json"), "eval")
    return report
