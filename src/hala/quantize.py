"""The FP8 teacher (report section 2.1): llm-compressor FP8-dynamic quantisation.

:func:`quantize_fp8` turns a full-precision checkpoint into a compressed-tensors FP8 checkpoint that
vLLM and transformers load: every ``Linear`` except the ignored ones (``lm_head`` by default) gets FP8
(E4M3) weights with one scale per output channel and FP8 activations quantised per token at run time.
No calibration data is needed. LFM2's short-convolution layers are ``Conv1d`` modules, which the
``Linear`` target leaves in full precision; their ``in_proj``/``out_proj`` are ``Linear`` and are
quantised.

The FP8 model's quality gate lives in :mod:`hala.fp8_check`, which the translate image runs (it needs
the engine that translates, not llm-compressor).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from hala.errors import HalaError

FP8_SCHEME = "FP8_DYNAMIC"
RECIPE_FILE = "recipe.yaml"


class QuantizationError(HalaError):
    """The model folder cannot be quantised (missing, already quantised, or the output is in the way)."""


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
