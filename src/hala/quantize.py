"""The FP8 teacher (report section 2.1): llm-compressor FP8-dynamic quantisation and its quality gate.

:func:`quantize_fp8` turns a full-precision checkpoint into a compressed-tensors FP8 checkpoint that
vLLM and transformers load: every ``Linear`` except the ignored ones (``lm_head`` by default) gets FP8
(E4M3) weights with one scale per output channel and FP8 activations quantised per token at run time.
No calibration data is needed. LFM2's short-convolution layers are ``Conv1d`` modules, which the
``Linear`` target leaves in full precision; their ``in_proj``/``out_proj`` are ``Linear`` and are
quantised.

:func:`validate_fp8` translates a fixed sample with the source and the FP8 model and refuses the FP8
model (:class:`QuantizationGateError`) when chrF++ drops by more than the allowed points.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from hala.errors import HalaError
from hala.metrics import bleu, chrf_pp

FP8_SCHEME = "FP8_DYNAMIC"
RECIPE_FILE = "recipe.yaml"


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


class QuantizationError(HalaError):
    """The model folder cannot be quantised (missing, already quantised, or the output is in the way)."""


class QuantizationGateError(HalaError):
    """The FP8 model translates measurably worse than its source model; ``report`` holds the numbers."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


def _check_source(model_dir: Path) -> None:
    """Raise unless ``model_dir`` is a full-precision ``save_pretrained`` folder."""
    import json

    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise QuantizationError(
            f"{model_dir} is not a model folder (no config.json); pass the folder the teacher was "
            "downloaded or saved into with save_pretrained"
        )
    quant = json.loads(config_file.read_text(encoding="utf-8")).get("quantization_config")
    if quant:
        method = quant.get("quant_method", "unknown")
        raise QuantizationError(
            f"{model_dir} is already quantised (quant_method {method!r}); pass the full-precision "
            "(bf16/fp32) checkpoint instead"
        )


def _check_output(model_dir: Path, out_dir: Path) -> None:
    """Raise when writing to ``out_dir`` would overwrite the source or mix with older files."""
    if out_dir.resolve() == model_dir.resolve():
        raise QuantizationError(f"out_dir {out_dir} is the source folder; choose a separate output folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise QuantizationError(
            f"out_dir {out_dir} is not empty; remove it or choose another folder so that no stale "
            "weight shards end up beside the FP8 ones"
        )


def quantize_fp8(model_dir: Path, out_dir: Path, ignore: Sequence[str] = ("lm_head",)) -> Path:
    """Quantise ``model_dir`` to FP8-dynamic with llm-compressor and save it, compressed, in ``out_dir``.

    Weights: FP8 E4M3, one scale per output channel; activations: FP8, one dynamic scale per token
    (no calibration data). ``ignore`` names modules (or ``re:`` patterns) left in full precision. The
    model loads on the CPU (float32 there, bfloat16 when a CUDA device is present; llm-compressor moves
    each module to the GPU while it quantises). The tokenizer, its chat template and ``recipe.yaml`` are
    written beside the weights. Returns ``out_dir``.
    """
    import torch
    from llmcompressor import oneshot
    from llmcompressor.core import reset_session
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.recipe import Recipe
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if isinstance(ignore, str):
        raise TypeError("ignore is one string; pass a list of module names, e.g. ['lm_head']")
    _check_source(model_dir)
    _check_output(model_dir, out_dir)

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    recipe = QuantizationModifier(targets="Linear", scheme=FP8_SCHEME, ignore=list(ignore))
    try:
        oneshot(model=model, tokenizer=tokenizer, recipe=recipe)
        out_dir.mkdir(parents=True, exist_ok=True)
        # oneshot wrapped save_pretrained: it compresses to FP8, adds quantization_config to config.json
        # and writes the session's recipe (merged with any recipe.yaml of the source) as recipe.yaml.
        with warnings.catch_warnings():
            # For saving, llm-compressor turns its onload hooks into accelerate ones, so transformers
            # warns about "offloaded modules"; the weights are in CPU memory already, nothing is lost.
            warnings.filterwarnings("ignore", message="Attempting to save a model with offloaded modules")
            model.save_pretrained(out_dir, save_compressed=True)
        tokenizer.save_pretrained(out_dir)
        if not (out_dir / RECIPE_FILE).is_file():
            Recipe.from_modifiers([recipe]).yaml(file_path=str(out_dir / RECIPE_FILE))
    finally:
        reset_session()  # the global session holds the model; release it
    return out_dir


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
