from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hala.merge import MergeError, check_mergeable, slerp_merge


def _shifted_copy(src: Path, dst: Path, scale: float) -> Path:
    """A stand-in fine-tune: the same model with every weight scaled."""
    shutil.copytree(src, dst)
    weights = load_file(dst / "model.safetensors")
    save_file(
        {k: v * scale for k, v in weights.items()}, dst / "model.safetensors", metadata={"format": "pt"}
    )
    return dst


def test_slerp_merge_loads_with_tokenizer_and_chat_template(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    base = tiny_models["student"]
    finetuned = _shifted_copy(base, tmp_path / "ft", 1.5)
    config = slerp_merge(finetuned, base, tmp_path / "merged", t=0.5)
    assert config["merge_method"] == "slerp" and config["parameters"] == {"t": 0.5}

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert "<|im_start|>" in tokenizer.chat_template
    AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    merged = load_file(tmp_path / "merged" / "model.safetensors")
    a, b = load_file(base / "model.safetensors"), load_file(finetuned / "model.safetensors")
    name = next(k for k, v in a.items() if v.dim() == 2 and v.abs().sum() > 0)
    # Parallel vectors: slerp at t=0.5 is their midpoint (1.25 x the base).
    assert torch.allclose(merged[name].float(), (a[name] + b[name]).float() / 2, atol=1e-3)


def test_merge_refuses_other_architectures_and_shapes(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    base = tiny_models["student"]
    other = shutil.copytree(base, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(MergeError, match="model_type differs"):
        check_mergeable(other, base)

    reshaped = shutil.copytree(base, tmp_path / "reshaped")
    weights = load_file(reshaped / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = torch.zeros(*(d + 1 for d in weights[name].shape))
    save_file(weights, reshaped / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(MergeError, match=f"tensor {name} has shape"):
        check_mergeable(reshaped, base)
