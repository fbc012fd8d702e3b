"""Stage ``quantize``: the teacher compressed to FP8 dynamic (llm-compressor), then validated.

Report section 2.1: the FP8 teacher must keep its translation quality (chrF++ on the first OPUS
pairs, against the source model) and is timed on warm generation for the speed-up the report claims.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from hala.config import EngineConfig, Preset, QualityConfig, QuantConfig
from hala.quantize import TimedTranslations, ValidationReport
from hala.stages.settings import StageSettings
from hala.translate.engines import Engine, Generation, GenerationSettings, Message


class QuantizeSettings(StageSettings):
    """The quantization scheme and gate, and how the teacher translates the validation pairs."""

    quant: QuantConfig
    engine: EngineConfig
    quality: QualityConfig
    prompt: str
    seed: int


def settings(preset: Preset) -> QuantizeSettings:
    """The ``quantize`` settings."""
    return QuantizeSettings(
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
    settings: QuantizeSettings, model_dir: Path, texts: Sequence[str]
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


def run(settings: QuantizeSettings, model_dir: str, opus_dir: str, out_dir: str) -> ValidationReport:
    """Quantize the teacher into ``out_dir`` and validate it on the first OPUS pairs.

    The stage fails (after logging the figures) when chrF++ drops by more than the gate allows.
    """
    import mlflow

    from hala import reference
    from hala.prepare import read_records
    from hala.quantize import QuantizationGateError, quantize_fp8, validate_fp8
    from hala.stages.context import open_stage

    pairs = read_records(Path(opus_dir)).slice(0, settings.quant.validation_samples).to_pylist()
    sources = [row["messages"][0]["content"] for row in pairs]
    references = [row["messages"][1]["content"] for row in pairs]
    with open_stage("quantize", inputs=[model_dir, opus_dir], outputs=[out_dir]) as stage:
        quantize_fp8(Path(model_dir), Path(out_dir), ignore=settings.quant.ignore)
        mlflow.log_params(
            {
                "quant.scheme": settings.quant.scheme,
                "quant.ignore": ",".join(settings.quant.ignore),
                "quant.timing_device": _device(),
            }
        )
        mlflow.log_artifact(str(Path(out_dir) / "recipe.yaml"))
        try:
            report = validate_fp8(
                Path(model_dir),
                Path(out_dir),
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
    (Path(out_dir) / "validation.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return report
