"""Generation engines: length-sorted batching, batched greedy generation on a tiny model, vLLM glue."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hala.translate.engines import (
    Generation,
    GenerationSettings,
    TransformersEngine,
    length_sorted_batches,
    parse_vllm_outputs,
    vllm_sampling_kwargs,
)

# Conversations of very different rendered lengths (a few tokens up to ~190), English and Arabic.
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 8}],
    [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "مرحبا بكم في هذا الدرس"},
    ],
    [{"role": "user", "content": "Translate this sentence into Arabic please, thank you."}],
    [{"role": "user", "content": "Short one."}],
]
# The random tiny model repeats one token under plain greedy decoding; a strong repetition penalty makes
# its (still deterministic) outputs depend on the prompt, so a padding or mask mistake shows up.
SETTINGS = GenerationSettings(max_new_tokens=16, repetition_penalty=5.0)


@pytest.fixture(scope="module")
def engine(tiny_models: dict[str, Path]) -> TransformersEngine:
    return TransformersEngine(tiny_models["teacher"], batch_size=8)


def _reference_ids(engine: TransformersEngine, conversation: list[dict[str, str]]) -> list[int]:
    """New token ids of one conversation generated alone, unpadded, straight through ``generate``."""
    import torch

    prompt = engine.render(conversation)
    with torch.no_grad():
        out = engine.model.generate(
            input_ids=torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=SETTINGS.max_new_tokens,
            do_sample=False,
            repetition_penalty=SETTINGS.repetition_penalty,
            pad_token_id=engine.tokenizer.pad_token_id,
            eos_token_id=engine.tokenizer.eos_token_id,
        )
    return list(out[0, len(prompt) :].tolist())


@pytest.fixture(scope="module")
def references(engine: TransformersEngine) -> list[list[int]]:
    return [_reference_ids(engine, c) for c in CONVERSATIONS]


@pytest.fixture(scope="module")
def batched(engine: TransformersEngine) -> list[Generation]:
    """All conversations through ``chat`` in one batch (``batch_size`` 8 > 5 conversations)."""
    assert engine.batch_size >= len(CONVERSATIONS)
    return engine.chat(CONVERSATIONS, SETTINGS)


# --- length_sorted_batches ------------------------------------------------------------------------


def test_length_sorted_batches_longest_first_with_stable_ties() -> None:
    lengths = [3, 10, 1, 10, 7, 3, 5]
    batches = length_sorted_batches(lengths, 3)
    assert batches == [[1, 3, 4], [6, 0, 5], [2]]
    flat = [i for batch in batches for i in batch]
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 7, 8, 50])
def test_length_sorted_batches_covers_every_index_once(batch_size: int) -> None:
    lengths = [(i * 37) % 11 for i in range(23)]
    batches = length_sorted_batches(lengths, batch_size)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(batch) == batch_size for batch in batches[:-1])
    assert 1 <= len(batches[-1]) <= batch_size
    assert len(batches) == -(-len(lengths) // batch_size)


def test_length_sorted_batches_empty_input() -> None:
    assert length_sorted_batches([], 4) == []


@pytest.mark.parametrize("batch_size", [0, -1])
def test_length_sorted_batches_rejects_non_positive_batch_size(batch_size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        length_sorted_batches([1, 2, 3], batch_size)


# --- TransformersEngine ---------------------------------------------------------------------------


def test_batched_results_match_each_conversation_alone(
    engine: TransformersEngine, batched: list[Generation]
) -> None:
    together = batched
    engine.batch_size = 1
    try:
        alone = engine.chat(CONVERSATIONS, SETTINGS)
    finally:
        engine.batch_size = 8
    assert len(together) == len(CONVERSATIONS)
    assert together == alone
    # Results are in input order: prompt sizes follow the conversations, not the length-sorted batches.
    assert [g.prompt_tokens for g in together] == [len(engine.render(c)) for c in CONVERSATIONS]
    # The outputs differ between prompts, so the comparison above can tell rows apart.
    assert len({g.text for g in together}) > 1


def test_batched_results_match_unpadded_generate(
    engine: TransformersEngine, batched: list[Generation], references: list[list[int]]
) -> None:
    for ids, generation in zip(references, batched, strict=True):
        assert generation.text == engine.tokenizer.decode(ids, skip_special_tokens=True)


def test_finish_reason_length_without_eos(
    engine: TransformersEngine, batched: list[Generation], references: list[list[int]]
) -> None:
    for ids, generation in zip(references, batched, strict=True):
        assert engine.tokenizer.eos_token_id not in ids
        assert generation.finish_reason == "length"
        assert generation.completion_tokens == SETTINGS.max_new_tokens


def test_small_max_new_tokens_bounds_completion(engine: TransformersEngine) -> None:
    settings = dataclasses.replace(SETTINGS, max_new_tokens=3)
    for generation in engine.chat(CONVERSATIONS, settings):
        assert generation.completion_tokens <= 3
        assert generation.finish_reason == "length"


def test_eos_mid_batch_stops_one_row_and_strips_padding(
    engine: TransformersEngine, references: list[list[int]]
) -> None:
    first, others = references[0], {t for ids in references[1:] for t in ids}
    # Declare as EOS a token the first conversation produces a few steps in and no other one produces.
    stop_at = next(k for k in range(2, len(first)) if first[k] not in first[:k] and first[k] not in others)
    eos_token = engine.tokenizer.convert_ids_to_tokens(first[stop_at])
    original = engine.tokenizer.eos_token
    engine.tokenizer.eos_token = eos_token
    try:
        assert engine.tokenizer.eos_token_id == first[stop_at]
        generations = engine.chat(CONVERSATIONS, SETTINGS)
    finally:
        engine.tokenizer.eos_token = original
    assert engine.tokenizer.eos_token == "<|im_end|>"

    assert generations[0] == Generation(
        text=engine.tokenizer.decode(first[:stop_at], skip_special_tokens=True),
        finish_reason="stop",
        prompt_tokens=len(engine.render(CONVERSATIONS[0])),
        completion_tokens=stop_at,
    )
    for generation in generations[1:]:
        assert generation.finish_reason == "length"
        assert generation.completion_tokens == SETTINGS.max_new_tokens
        assert "<|pad|>" not in generation.text


def test_count_tokens_agrees_with_tokenizer(engine: TransformersEngine) -> None:
    for text in ["", "Hello world", "مرحبا بكم في هذا الدرس", "code: `x = 1` and https://example.com/a?b=c"]:
        expected = len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert engine.count_tokens(text) == expected
    assert engine.count_tokens("Hello world") > 0
    assert engine.count_tokens("Hello world Hello world") > engine.count_tokens("Hello world")


def test_max_model_len_defaults_to_position_embeddings(engine: TransformersEngine) -> None:
    assert engine.max_model_len == engine.model.config.max_position_embeddings


def test_render_ends_at_the_assistant_turn(engine: TransformersEngine) -> None:
    ids = engine.render([{"role": "user", "content": "Hi"}])
    assert (
        engine.tokenizer.decode(ids)
        == "<|startoftext|><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


# --- vLLM glue (pure functions) -------------------------------------------------------------------


def test_vllm_sampling_kwargs_maps_every_field() -> None:
    settings = GenerationSettings(
        max_new_tokens=123, temperature=0.7, top_p=0.9, repetition_penalty=1.15, seed=42
    )
    assert vllm_sampling_kwargs(settings) == {
        "max_tokens": 123,
        "temperature": 0.7,
        "top_p": 0.9,
        "repetition_penalty": 1.15,
        "seed": 42,
        "skip_special_tokens": True,
    }
    # Every GenerationSettings field reaches vLLM: changing any one of them changes the arguments.
    for field in dataclasses.fields(GenerationSettings):
        changed = dataclasses.replace(settings, **{field.name: getattr(settings, field.name) + 1})
        assert vllm_sampling_kwargs(changed) != vllm_sampling_kwargs(settings), field.name


def _request_output(text: str, reason: str | None, completion: int, prompt: list[int] | None) -> Any:
    completion_output = SimpleNamespace(text=text, finish_reason=reason, token_ids=list(range(completion)))
    return SimpleNamespace(outputs=[completion_output], prompt_token_ids=prompt)


def test_parse_vllm_outputs_maps_reasons_and_counts() -> None:
    outputs = [
        _request_output("done", "stop", 3, [1, 2, 3, 4, 5]),
        _request_output("cut off", "length", 7, [1, 2]),
        _request_output("aborted", "abort", 1, [9]),
        _request_output("", None, 0, None),
    ]
    assert parse_vllm_outputs(outputs) == [
        Generation(text="done", finish_reason="stop", prompt_tokens=5, completion_tokens=3),
        Generation(text="cut off", finish_reason="length", prompt_tokens=2, completion_tokens=7),
        # Anything but "length" (an abort, an unfinished request) counts as "stop".
        Generation(text="aborted", finish_reason="stop", prompt_tokens=1, completion_tokens=1),
        Generation(text="", finish_reason="stop", prompt_tokens=0, completion_tokens=0),
    ]


def test_parse_vllm_outputs_uses_first_completion_and_keeps_order() -> None:
    first = SimpleNamespace(text="first", finish_reason="stop", token_ids=[1])
    second = SimpleNamespace(text="second", finish_reason="length", token_ids=[1, 2])
    outputs = [
        SimpleNamespace(outputs=[first, second], prompt_token_ids=[0]),
        _request_output("b", "stop", 2, [0, 0]),
    ]
    parsed = parse_vllm_outputs(outputs)
    assert [g.text for g in parsed] == ["first", "b"]
    assert parsed[0].finish_reason == "stop"
    assert parse_vllm_outputs([]) == []
