"""Stage 7: MergeKit slerp between a fine-tune and its base (t=0.5 in the presets).

The two models must share architecture and every tensor's shape; otherwise the merge is refused
with a message naming the first difference. The merged folder carries the fine-tune's tokenizer
and chat template and is checked to load before the stage reports success.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hala.errors import HalaError

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


class MergeError(HalaError):
    """Two models that cannot be merged, or a merge that does not load."""


def _config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.exists():
        raise MergeError(f"{model_dir}: no config.json; expected a save_pretrained model folder")
    config: dict[str, Any] = json.loads(path.read_text())
    return config


def tensor_shapes(model_dir: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the folder's safetensors files (headers only)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise MergeError(f"{model_dir}: no *.safetensors weights to merge")
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    return shapes


def check_mergeable(finetuned: Path, base: Path) -> None:
    """Raise :class:`MergeError` naming the first architecture or shape difference."""
    a, b = _config(finetuned), _config(base)
    for key in ("model_type", "architectures"):
        if a.get(key) != b.get(key):
            raise MergeError(
                f"cannot merge {finetuned} into {base}: {key} differs ({a.get(key)!r} vs {b.get(key)!r}); "
                "slerp needs a fine-tune of the same base"
            )
    sa, sb = tensor_shapes(finetuned), tensor_shapes(base)
    if sa.keys() != sb.keys():
        only = sorted(sa.keys() ^ sb.keys())[:5]
        raise MergeError(f"cannot merge {finetuned} into {base}: tensors present in only one of them: {only}")
    for name in sorted(sa):
        if sa[name] != sb[name]:
            raise MergeError(
                f"cannot merge {finetuned} into {base}: tensor {name} has shape {sa[name]} vs {sb[name]}"
            )


def slerp_config(finetuned: Path, base: Path, t: float, dtype: str) -> dict[str, Any]:
    """The MergeKit configuration (also logged to MLflow): t=0 is the base, t=1 the fine-tune."""
    return {
        "merge_method": "slerp",
        "base_model": str(base),
        "models": [{"model": str(base)}, {"model": str(finetuned)}],
        "parameters": {"t": t},
        "dtype": dtype,
    }


def slerp_merge(finetuned: Path, base: Path, out_dir: Path, t: float) -> dict[str, Any]:
    """Merge, copy the fine-tune's tokenizer and chat template, check it loads; returns the config."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    check_mergeable(finetuned, base)
    dtype = str(_config(finetuned).get("dtype") or _config(finetuned).get("torch_dtype") or "float32")
    config = slerp_config(finetuned, base, t, dtype)
    run_merge(
        MergeConfiguration.model_validate(config),
        str(out_dir),
        MergeOptions(copy_tokenizer=False, trust_remote_code=False, write_model_card=False, quiet=True),
    )
    for name in TOKENIZER_FILES:
        if (finetuned / name).exists():
            shutil.copy2(finetuned / name, out_dir / name)
    check_loads(out_dir)
    return config


def check_loads(model_dir: Path) -> None:
    """The folder loads as a causal LM with a tokenizer that has a chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.chat_template:
        raise MergeError(f"{model_dir}: the merged model's tokenizer has no chat template")
    AutoModelForCausalLM.from_pretrained(model_dir)
