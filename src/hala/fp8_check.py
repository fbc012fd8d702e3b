"""The FP8 teacher's quality gate (report section 2.1): the same sample through both models, scored.

:func:`validate_fp8` translates a fixed sample with the source and the FP8 model and refuses the FP8
model (:class:`QuantizationGateError`) when chrF++ drops by more than the allowed points; it also times
warm generation for the speed-up the report claims. It needs only an engine, not llm-compressor: the
translate image runs it (:mod:`hala.stages.validate_fp8`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from hala.errors import HalaError
from hala.metrics import bleu, chrf_pp


@dataclass(frozen=True)
class TimedTranslations:
    """One model's translations of the sample and what warm generation cost.

    ``seconds`` is the wall time of generation only: the engine was loaded (and warmed up) before the
    clock started, so the figure compares the two models, not their start-up.
    """

    texts: list[str]
    output_tokens: int
    seconds: float


Translate = Callable[[Path, Sequence[str]], TimedTranslations]
"""A translation engine: model folder and English texts in, one Arabic text per input (in order) out."""


class QuantizationGateError(HalaError):
    """The FP8 model translates measurably worse than its source model; ``report`` holds the numbers."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


def dir_size_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (weights, config, tokenizer, recipe), recursively."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; pass the model folder whose size to measure")
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class ValidationReport:
    """Source versus FP8 model on the same fixed sample (scores 0-100, deltas are fp8 - source).

    Speed is warm generation in output tokens per second (engine start excluded), and ``speedup`` is
    the FP8 model's over the source model's, the report's "~2x" (section 2.1). It is measured on any
    device, but only a GPU with FP8 tensor cores (H100 class) shows the report's gain: on a CPU the
    compressed-tensors weights are decompressed when the model loads, and an A100 runs FP8 weight-only.
    """

    bleu_source: float
    bleu_fp8: float
    chrf_source: float
    chrf_fp8: float
    chrf_delta: float
    bleu_delta: float
    size_source_bytes: int
    size_fp8_bytes: int
    output_tokens_source: int
    output_tokens_fp8: int
    tokens_per_s_source: float
    tokens_per_s_fp8: float
    speedup: float
    n_samples: int

    def to_metrics(self) -> dict[str, float]:
        """The numbers as MLflow metrics (field name -> float)."""
        return {key: float(value) for key, value in asdict(self).items()}


def _translate_checked(
    translate: Translate, model_dir: Path, sources: Sequence[str]
) -> tuple[TimedTranslations, float]:
    """The translations of ``sources`` by ``model_dir`` and the output tokens per second."""
    done = translate(model_dir, sources)
    outputs = done.texts
    if not isinstance(outputs, list) or len(outputs) != len(sources):
        got = f"{len(outputs)} texts" if isinstance(outputs, list) else type(outputs).__name__
        raise HalaError(
            f"translate returned {got} for {len(sources)} sources with model {model_dir}; "
            "it must return a list with one translation per source text, in order"
        )
    if done.seconds <= 0 or done.output_tokens < 0:
        raise HalaError(
            f"translate timed {done.output_tokens} output tokens in {done.seconds} s with model "
            f"{model_dir}; it must report the tokens it generated and a positive wall time"
        )
    return done, done.output_tokens / done.seconds


def validate_fp8(
    source_dir: Path,
    fp8_dir: Path,
    sources: Sequence[str],
    references: Sequence[str],
    translate: Translate,
    max_chrf_drop: float = 1.0,
) -> ValidationReport:
    """Translate ``sources`` with both models, score them against ``references`` and gate on chrF++.

    Raises :class:`QuantizationGateError` when chrF++ of the FP8 model is more than ``max_chrf_drop``
    points below the source model's; otherwise returns the :class:`ValidationReport`.
    """
    source_dir, fp8_dir = Path(source_dir), Path(fp8_dir)
    if len(sources) != len(references) or not sources:
        raise ValueError(
            f"{len(sources)} sources and {len(references)} references; pass a non-empty sample with "
            "one reference per source text"
        )
    if max_chrf_drop < 0:
        raise ValueError(f"max_chrf_drop is {max_chrf_drop}; pass the allowed drop as points >= 0")

    source, source_speed = _translate_checked(translate, source_dir, sources)
    fp8, fp8_speed = _translate_checked(translate, fp8_dir, sources)
    source_out, fp8_out = source.texts, fp8.texts
    bleu_source, bleu_fp8 = bleu(source_out, references), bleu(fp8_out, references)
    chrf_source, chrf_fp8 = chrf_pp(source_out, references), chrf_pp(fp8_out, references)
    report = ValidationReport(
        bleu_source=bleu_source,
        bleu_fp8=bleu_fp8,
        chrf_source=chrf_source,
        chrf_fp8=chrf_fp8,
        chrf_delta=chrf_fp8 - chrf_source,
        bleu_delta=bleu_fp8 - bleu_source,
        size_source_bytes=dir_size_bytes(source_dir),
        size_fp8_bytes=dir_size_bytes(fp8_dir),
        output_tokens_source=source.output_tokens,
        output_tokens_fp8=fp8.output_tokens,
        tokens_per_s_source=source_speed,
        tokens_per_s_fp8=fp8_speed,
        speedup=fp8_speed / source_speed if source_speed > 0 else 0.0,
        n_samples=len(sources),
    )
    drop = -report.chrf_delta
    if drop > max_chrf_drop:
        raise QuantizationGateError(
            f"the FP8 model {fp8_dir} fails the quality gate: chrF++ {chrf_fp8:.2f} against "
            f"{chrf_source:.2f} for the source model {source_dir} on {len(sources)} samples, a drop of "
            f"{drop:.2f} points where at most {max_chrf_drop:.2f} is allowed (BLEU {bleu_fp8:.2f} against "
            f"{bleu_source:.2f}). Inspect the sample translations; if the drop is acceptable raise "
            "max_chrf_drop in the preset's quant section, otherwise keep the source model as the teacher.",
            report,
        )
    return report
