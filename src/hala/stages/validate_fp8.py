"""Stage ``validate_fp8``: the FP8 teacher against its source, on the teacher's engine (report 2.1).

Both models translate the first OPUS pairs with the teacher's prompt; the FP8 teacher must keep its
translation quality (chrF++ may drop by at most ``quant.max_chrf_drop``) and is timed on warm generation
for the speed-up the report claims (~2x). It runs on the translate image (vLLM on the cluster), apart
from the quantization itself (llm-compressor, the quantize image), so the figures are those of the engine
that translates the corpus. The stage fails, after logging its figures, when the gate refuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from hala.config import EngineConfig, Preset, QualityConfig, QuantConfig
from hala.fp8_check import TimedTranslations, ValidationReport
from hala.stages.settings import StageSettings
from hala.translate.engines import Engine, Generation, GenerationSettings, Message

VALIDATION_FILE = "validation.json"  # the stage's figures (``quant.*``) in its output folder


class ValidateFP8Settings(StageSettings):
    """The gate and its sample, and how the teacher translates it."""

    quant: QuantConfig
    engine: EngineConfig
    quality: QualityConfig
    prompt: str
    seed: int


def settings(preset: Preset) -> ValidateFP8Settings:
    """The ``validate_fp8`` settings."""
    return ValidateFP8Settings(
        quant=preset.quant,
        engine=preset.teacher.engine,
        quality=preset.quality,
        prompt=preset.teacher.prompt,
        seed=preset.seed,
    )


class _CountingEngine:
    """An engine that counts the tokens it generates."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.max_model_len = engine.max_model_len
        self.output_tokens = 0

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``, as the wrapped engine counts them."""
        return self.engine.count_tokens(text)

    def chat(self, conversations: Sequence[list[Message]], settings: GenerationSettings) -> list[Generation]:
        """The wrapped engine's generations; their completion tokens are added up."""
        generations = self.engine.chat(conversations, settings)
        self.output_tokens += sum(g.completion_tokens for g in generations)
        return generations


def translate_with_model(
    settings: ValidateFP8Settings, model_dir: Path, texts: Sequence[str]
) -> TimedTranslations:
    """Teacher-prompt translations of ``texts`` by one model (failed texts come back empty), timed warm.

    The engine loads and translates the first text once before the clock starts (vLLM's CUDA graphs,
    kernel selection), so the time is that of generation alone.
    """
    from hala.translate.factory import make_engine, translate_settings
    from hala.translate.runner import translate_texts

    engine = make_engine(model_dir, settings.engine)
    runner = translate_settings(settings.engine, settings.quality, settings.seed, settings.prompt)
    translate_texts(engine, texts[:1], runner)
    counting = _CountingEngine(engine)
    start = time.perf_counter()
    results = translate_texts(counting, texts, runner)
    seconds = time.perf_counter() - start
    return TimedTranslations([r.text or "" for r in results], counting.output_tokens, seconds)


def _device() -> str:
    """Where this process generates: ``cuda`` with a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(
    settings: ValidateFP8Settings, model_dir: str, fp8_dir: str, opus_dir: str, out_dir: str
) -> ValidationReport:
    """Validate the FP8 teacher in ``fp8_dir`` against ``model_dir``; the figures also in ``out_dir``."""
    import mlflow

    from hala import reference
    from hala.fp8_check import QuantizationGateError, validate_fp8
    from hala.prepare import read_records
    from hala.stages.context import open_stage

    pairs = read_records(Path(opus_dir)).slice(0, settings.quant.validation_samples).to_pylist()
    sources = [row["messages"][0]["content"] for row in pairs]
    references = [row["messages"][1]["content"] for row in pairs]
    inputs = [model_dir, fp8_dir, opus_dir]
    with open_stage("validate_fp8", inputs=inputs, outputs=[out_dir]) as stage:
        mlflow.log_params({"quant.timing_device": _device(), "quant.engine": settings.engine.kind})
        try:
            report = validate_fp8(
                Path(model_dir),
                Path(fp8_dir),
                sources,
                references,
                translate=lambda model, texts: translate_with_model(settings, model, texts),
                max_chrf_drop=settings.quant.max_chrf_drop,
            )
        except QuantizationGateError as exc:  # record the failing numbers, then fail the stage
            stage.log_metrics({f"quant.{k}": v for k, v in exc.report.to_metrics().items()})
            raise
        metrics = {f"quant.{k}": v for k, v in report.to_metrics().items()}
        metrics["quant.report_speedup"] = reference.FP8_SPEEDUP
        stage.log_metrics(metrics)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / VALIDATION_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return report


def read_validation(folder: str | Path) -> dict[str, float]:
    """The figures a ``validate_fp8`` task wrote (``quant.*``)."""
    return dict(json.loads((Path(folder) / VALIDATION_FILE).read_text(encoding="utf-8")))
