"""Tiny LFM2-architecture models for the ``tiny`` preset, built offline and deterministically.

``hala tiny-models --out DIR`` writes one ``save_pretrained`` folder per role (teacher, judge,
translator base, student). All share a byte-level BPE tokenizer trained on the English and Arabic
lines in ``assets/tokenizer_corpus.txt`` and a ChatML-style chat template with ``{% generation %}``
markers (TRL's assistant-only loss needs them). The same seed writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ("<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>")
VOCAB_SIZE = 1024

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{% generation %}{{- message['content'] + '<|im_end|>' -}}{% endgeneration %}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class TinySpec:
    """Size of one tiny model."""

    hidden: int
    layers: int
    heads: int
    seed_offset: int


TINY_MODELS: dict[str, TinySpec] = {
    "teacher": TinySpec(hidden=96, layers=4, heads=4, seed_offset=1),
    "judge": TinySpec(hidden=64, layers=4, heads=4, seed_offset=2),
    "translator-base": TinySpec(hidden=64, layers=4, heads=4, seed_offset=3),
    "student": TinySpec(hidden=64, layers=4, heads=4, seed_offset=4),
}


def tokenizer_corpus() -> list[str]:
    """The English and Arabic lines the tiny tokenizer is trained on (shipped with the package)."""
    text = resources.files("hala").joinpath("assets/tokenizer_corpus.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def build_tokenizer():  # type: ignore[no-untyped-def]  # returns transformers.PreTrainedTokenizerFast
    """A byte-level BPE tokenizer with the chat template (deterministic: no randomness in BPE training)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

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
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=2048,
    )


def build_model(spec: TinySpec, tokenizer, seed: int):  # type: ignore[no-untyped-def]
    """A randomly initialised tiny ``Lfm2ForCausalLM`` mixing conv and attention layers."""
    import torch
    from transformers import Lfm2Config, Lfm2ForCausalLM

    layer_types = ["conv" if i % 2 == 0 else "full_attention" for i in range(spec.layers)]
    config = Lfm2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 2,
        block_multiple_of=16,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=max(1, spec.heads // 2),
        max_position_embeddings=2048,
        layer_types=layer_types,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
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
