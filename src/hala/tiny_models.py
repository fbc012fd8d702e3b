"""Tiny LFM2-architecture models for the ``tiny`` preset, built offline and deterministically.

``hala tiny-models --out DIR`` writes one ``save_pretrained`` folder per role (teacher, judge,
translator base, student). They stand in for LiquidAI's LFM2 checkpoints, so every outside contract a
real checkpoint brings is the real one:

* **Chat template**: the text LiquidAI's ``LiquidAI/LFM2-*`` checkpoints ship, read from the installed
  TRL package (``trl/chat_templates/lfm2.jinja``, "Original LFM2 chat template (as shipped by
  LiquidAI/LFM2-* checkpoints)" in TRL's ``chat_templates/README.md``; TRL's weekly
  ``scripts/check_chat_templates.py`` holds ``LiquidAI/LFM2-1.2B`` to its stored copies). It has no
  ``{% generation %}`` markers: SFT with assistant-only loss goes through TRL's own detection, which
  swaps in ``lfm2_training.jinja``, exactly as it does for the real checkpoints.
* **Special tokens**: LFM2's first 14 vocabulary entries, in LFM2's order, so the ids match too
  (pad 0, bos ``<|startoftext|>`` 1, eos ``<|im_end|>`` 7). Evidence: LiquidAI/LFM2-1.2B-Extract's
  ``special_tokens_map.json`` (bos/eos/pad) and the token list of LiquidAI's LFM2.5-1.2B-Instruct GGUF
  (ids 0-13, ``tokenizer.ggml.eos_token_id`` 7) as dumped in github.com/CHKDSKLabs/l-bom's README.
* **config.json**: the ``block_*``/``conv_*`` fields LiquidAI's configs carry (LiquidAI/LFM2-700M
  ``config.json``; mirrors of LFM2-350M and LFM2-1.2B carry the same keys). transformers' ``Lfm2Config``
  drops ``conv_dim`` and ``block_dim`` (they equal ``hidden_size``), but vLLM's
  ``vllm/model_executor/models/lfm2.py`` reads ``config.conv_dim`` (``ShortConv``, the conv-state
  shape) and ``config.block_dim`` (the MLP), so they are written back here.
* **Head size**: 32 for every model, one of the sizes vLLM's CPU attention backend takes
  (``CPUAttentionBackend.get_supported_head_sizes``: 32, 64, 80, ... in
  ``vllm/v1/attention/backends/cpu_attn.py``; 16 and 24 are refused).

All share a byte-level BPE tokenizer trained on the English and Arabic lines in
``assets/tokenizer_corpus.txt``. The same seed writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hala.errors import HalaError

# LFM2's special tokens, ids 0-13 in this order (see the module docstring for the evidence).
SPECIAL_TOKENS = (
    "<|pad|>",
    "<|startoftext|>",
    "<|endoftext|>",
    "<|fim_pre|>",
    "<|fim_mid|>",
    "<|fim_suf|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|tool_list_start|>",
    "<|tool_list_end|>",
    "<|tool_call_start|>",
    "<|tool_call_end|>",
    "<|tool_response_start|>",
    "<|tool_response_end|>",
)
VOCAB_SIZE = 1024
HEAD_DIM = 32
# vLLM's CPU attention kernels (vllm/v1/attention/backends/cpu_attn.py, get_supported_head_sizes).
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256)
TRL_LFM2_TEMPLATE = "chat_templates/lfm2.jinja"


def lfm2_chat_template() -> str:
    """LiquidAI's LFM2 chat template, as the installed TRL stores it (``trl/chat_templates/lfm2.jinja``)."""
    try:
        return resources.files("trl").joinpath(TRL_LFM2_TEMPLATE).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise HalaError(
            "the tiny models take LiquidAI's LFM2 chat template from TRL's package "
            f"(trl/{TRL_LFM2_TEMPLATE}), which is not installed here ({type(exc).__name__}: {exc}); "
            "install trl>=1.16 (pip install 'hala[train]')"
        ) from exc


@dataclass(frozen=True)
class TinySpec:
    """Size of one tiny model (``hidden / heads`` is the attention head size)."""

    hidden: int
    layers: int
    heads: int
    seed_offset: int

    @property
    def head_dim(self) -> int:
        """The attention head size."""
        return self.hidden // self.heads


TINY_MODELS: dict[str, TinySpec] = {
    "teacher": TinySpec(hidden=96, layers=4, heads=96 // HEAD_DIM, seed_offset=1),
    "judge": TinySpec(hidden=64, layers=4, heads=64 // HEAD_DIM, seed_offset=2),
    "translator-base": TinySpec(hidden=64, layers=4, heads=64 // HEAD_DIM, seed_offset=3),
    "student": TinySpec(hidden=64, layers=4, heads=64 // HEAD_DIM, seed_offset=4),
}


def tokenizer_corpus() -> list[str]:
    """The English and Arabic lines the tiny tokenizer is trained on (shipped with the package)."""
    text = resources.files("hala").joinpath("assets/tokenizer_corpus.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def build_tokenizer():  # type: ignore[no-untyped-def]  # returns transformers.PreTrainedTokenizerFast
    """A byte-level BPE tokenizer with LFM2's special tokens and chat template (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    chat_template = lfm2_chat_template()
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<|pad|>",
        bos_token="<|startoftext|>",
        eos_token="<|im_end|>",
        unk_token=None,
        chat_template=chat_template,
        padding_side="left",
        model_max_length=2048,
    )


def lfm2_config_fields(spec: TinySpec) -> dict[str, Any]:
    """Fields LiquidAI's LFM2 ``config.json`` has beyond transformers' ``Lfm2Config`` (vLLM reads them)."""
    return {
        "block_dim": spec.hidden,
        "block_ff_dim": spec.hidden * 2,  # Lfm2Config reads it as intermediate_size, as for the real configs
        "block_mlp_init_scale": 1.0,
        "block_norm_eps": 1e-05,
        "block_out_init_scale": 1.0,
        "block_use_swiglu": True,
        "block_use_xavier_init": True,
        "conv_dim": spec.hidden,
        "conv_dim_out": spec.hidden,
        "conv_use_xavier_init": True,
        "num_heads": spec.heads,
        "use_pos_enc": True,
    }


def build_model(spec: TinySpec, tokenizer, seed: int):  # type: ignore[no-untyped-def]
    """A randomly initialised tiny ``Lfm2ForCausalLM`` mixing conv and attention layers."""
    import torch
    from transformers import Lfm2Config, Lfm2ForCausalLM

    if spec.head_dim not in VLLM_CPU_HEAD_SIZES or spec.hidden % spec.heads:
        raise ValueError(f"head size {spec.hidden}/{spec.heads} is not one vLLM's CPU kernels take")
    layer_types = ["conv" if i % 2 == 0 else "full_attention" for i in range(spec.layers)]
    config = Lfm2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        block_multiple_of=16,
        block_auto_adjust_ff_dim=True,
        block_ffn_dim_multiplier=1.0,
        conv_L_cache=3,
        conv_bias=False,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=max(1, spec.heads // 2),
        max_position_embeddings=2048,
        layer_types=layer_types,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        **lfm2_config_fields(spec),
    )
    torch.manual_seed(seed + spec.seed_offset)
    model = Lfm2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build_tiny_models(
    out: Path, seed: int = 0, names: tuple[str, ...] = tuple(TINY_MODELS)
) -> dict[str, Path]:
    """Write the tiny models (model + tokenizer + chat template) under ``out/<name>``."""
    tokenizer = build_tokenizer()
    return {name: save_tiny_model(name, out / name, seed, tokenizer) for name in names}


def save_tiny_model(name: str, path: Path, seed: int = 0, tokenizer: Any = None) -> Path:
    """Write one tiny model (``teacher``, ``judge``, ``translator-base`` or ``student``) to ``path``."""
    if name not in TINY_MODELS:
        raise KeyError(f"unknown tiny model {name!r}; known: {sorted(TINY_MODELS)}")
    tokenizer = tokenizer or build_tokenizer()
    build_model(TINY_MODELS[name], tokenizer, seed).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
