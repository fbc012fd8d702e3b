from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hala.tiny_models import TINY_MODELS, build_tiny_models


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_every_role_is_built(tiny_models: dict[str, Path]) -> None:
    assert set(tiny_models) == set(TINY_MODELS)
    for folder in tiny_models.values():
        assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= {
            p.name for p in folder.iterdir()
        }


def test_same_seed_same_bytes_other_seed_other_weights(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    again = build_tiny_models(tmp_path / "again", names=("student",))["student"]
    assert _digest(again) == _digest(tiny_models["student"])
    other = build_tiny_models(tmp_path / "other", seed=1, names=("student",))["student"]
    assert _digest(other)["model.safetensors"] != _digest(again)["model.safetensors"]


def test_loads_as_lfm2_and_generates(tiny_models: dict[str, Path]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_models["teacher"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "lfm2"
    assert set(model.config.layer_types) == {"conv", "full_attention"}
    batch = tokenizer(["Translate from English to Arabic: hello", "hi"], return_tensors="pt", padding=True)
    assert tokenizer.padding_side == "left"
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)


@pytest.mark.parametrize("text", ["The river is long.", "النهر طويل جداً.", "mixed نص 123 `code`"])
def test_tokenizer_round_trips_english_and_arabic(tiny_models: dict[str, Path], text: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["student"])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode())  # BPE merges learned on the EN/AR corpus


def test_chat_template_marks_only_assistant_tokens(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["student"])
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "مرحبا"},
    ]
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assistant = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert assistant == "مرحبا<|im_end|>"
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
