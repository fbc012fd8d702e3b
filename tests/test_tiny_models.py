from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hala.tiny_models import SPECIAL_TOKENS, TINY_MODELS, VLLM_CPU_HEAD_SIZES, build_tiny_models


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


def test_chat_template_is_lfm2s_own_and_trl_swaps_in_its_training_copy(tiny_models: dict[str, Path]) -> None:
    """The template is LiquidAI's LFM2 text; TRL recognises it and masks with its marked training copy."""
    from importlib import resources

    from transformers import AutoTokenizer
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["student"])
    shipped = resources.files("trl").joinpath("chat_templates/lfm2.jinja").read_text(encoding="utf-8")
    assert tokenizer.chat_template == shipped
    assert (tiny_models["student"] / "chat_template.jinja").read_text(encoding="utf-8") == shipped
    assert not has_generation_markers(tokenizer.chat_template)
    training = get_training_chat_template(tokenizer)
    assert training == resources.files("trl").joinpath("chat_templates/lfm2_training.jinja").read_text(
        "utf-8"
    )

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "مرحبا"},
    ]
    # The layout LiquidAI documents for LFM2 (Liquid4All/docs, lfm/key-concepts/chat-template.md).
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|startoftext|><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSay hi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    out = tokenizer.apply_chat_template(
        messages, return_dict=True, return_assistant_tokens_mask=True, chat_template=training
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]) == "مرحبا<|im_end|>\n"


def test_special_tokens_have_lfm2s_ids(tiny_models: dict[str, Path]) -> None:
    """pad 0, bos <|startoftext|> 1, eos <|im_end|> 7, the tool markers 8-13, as in LiquidAI's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["teacher"])
    assert tokenizer.convert_ids_to_tokens(list(range(14))) == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 7)
    config = json.loads((tiny_models["teacher"] / "config.json").read_text())
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"]) == (0, 1, 7)
    for token in SPECIAL_TOKENS:  # never split by BPE
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [
            tokenizer.convert_tokens_to_ids(token)
        ]


# Every config field vLLM's LFM2 (vllm/model_executor/models/lfm2.py, layers/mamba/short_conv.py) reads.
VLLM_LFM2_FIELDS = {
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
    "max_position_embeddings", "layer_types", "norm_eps", "rope_parameters", "intermediate_size",
    "block_dim", "block_multiple_of", "block_auto_adjust_ff_dim", "block_ffn_dim_multiplier",
    "conv_dim", "conv_L_cache", "conv_bias",
}  # fmt: skip


def _vllm_mlp_size(config: dict[str, object]) -> int:
    """Lfm2MLP's feed-forward width as vLLM computes it (it rounds even without a multiplier)."""
    size = int(config["intermediate_size"])  # type: ignore[call-overload]
    if config["block_auto_adjust_ff_dim"]:
        size = int(2 * size / 3)
        if config["block_ffn_dim_multiplier"] is not None:
            size = int(float(config["block_ffn_dim_multiplier"]) * size)  # type: ignore[arg-type]
        multiple = int(config["block_multiple_of"])  # type: ignore[call-overload]
        size = multiple * ((size + multiple - 1) // multiple)
    return size


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_config_has_the_fields_vllm_reads_and_a_head_size_its_cpu_kernels_take(
    tiny_models: dict[str, Path], name: str
) -> None:
    from safetensors import safe_open

    config = json.loads((tiny_models[name] / "config.json").read_text())
    assert set(config) >= VLLM_LFM2_FIELDS, VLLM_LFM2_FIELDS - set(config)
    # As LiquidAI's own configs have them (LiquidAI/LFM2-700M config.json): conv/block dims = hidden size.
    assert config["conv_dim"] == config["conv_dim_out"] == config["block_dim"] == config["hidden_size"]
    assert config["num_heads"] == config["num_attention_heads"]
    assert config["hidden_size"] // config["num_attention_heads"] in VLLM_CPU_HEAD_SIZES
    assert config["hidden_size"] % config["num_attention_heads"] == 0
    # The weights have the shapes vLLM builds from those fields, so its loader accepts them.
    with safe_open(str(tiny_models[name] / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())
        conv = next(k for k in names if k.endswith("conv.conv.weight"))
        assert weights.get_slice(conv).get_shape() == [config["conv_dim"], 1, config["conv_L_cache"]]
        w1 = next(k for k in names if k.endswith("feed_forward.w1.weight"))
        assert weights.get_slice(w1).get_shape() == [_vllm_mlp_size(config), config["block_dim"]]
