"""Translate texts and conversations with an engine: chunk, mask, prompt, check, retry, reassemble.

A text is split into prose segments (:mod:`hala.translate.chunking`); code blocks, markdown
structure, URLs and inline code never reach the model. Every prose segment is sent as one user turn
``prompt.format(x=segment)``; the output is checked (:mod:`hala.translate.quality`) and a failing
segment is retried with the retry settings. A text with a segment that still fails is reported with
the reason, so its record can be quarantined; empty or non-prose texts pass through without a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hala.translate.chunking import (
    PlaceholderError,
    Segment,
    is_translatable,
    mask_spans,
    reassemble,
    split_for_translation,
    unmask_spans,
)
from hala.translate.engines import Engine, GenerationSettings
from hala.translate.quality import QualityRules, check_output


def sampling_retry(first: GenerationSettings) -> GenerationSettings:
    """The decoding of a retry: the first attempt's limits, sampled, with a repetition penalty."""
    return replace(first, temperature=0.7, top_p=0.95, repetition_penalty=1.15)


@dataclass(frozen=True)
class TranslateSettings:
    """How a stage translates: the prompt, the chunk budget, decoding, retries and output checks."""

    prompt: str
    max_input_tokens: int = 512
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    retry: GenerationSettings = field(default_factory=lambda: sampling_retry(GenerationSettings()))
    max_attempts: int = 2
    rules: QualityRules = field(default_factory=QualityRules)


@dataclass
class TextResult:
    """A translated text, or the reason it could not be translated."""

    text: str | None
    reason: str | None = None
    model_calls: int = 0


@dataclass
class _Unit:
    text_index: int
    masked: str
    spans: list[str]
    output: str | None = None
    reason: str | None = None


Plan = list[Segment] | None  # a text's segments; None: passes through without a model call


def _units(
    texts: Sequence[str], settings: TranslateSettings, engine: Engine
) -> tuple[list[Plan], list[_Unit]]:
    plans: list[Plan] = []
    units: list[_Unit] = []
    for index, text in enumerate(texts):
        if not is_translatable(text):
            plans.append(None)
            continue
        segments = split_for_translation(text, settings.max_input_tokens, engine.count_tokens)
        plans.append(segments)
        for segment in segments:
            if segment.translate:
                masked, spans = mask_spans(segment.text)
                units.append(_Unit(index, masked, spans))
    return plans, units


def translate_texts(engine: Engine, texts: Sequence[str], settings: TranslateSettings) -> list[TextResult]:
    """Translate ``texts`` in one batched pass per attempt; results in input order."""
    plans, units = _units(texts, settings, engine)
    calls = [0] * len(texts)
    pending = list(units)
    for attempt in range(settings.max_attempts):
        if not pending:
            break
        decoding = settings.generation if attempt == 0 else settings.retry
        conversations = [[{"role": "user", "content": settings.prompt.format(x=u.masked)}] for u in pending]
        generations = engine.chat(conversations, decoding)
        failed = []
        for unit, generation in zip(pending, generations, strict=True):
            calls[unit.text_index] += 1
            unit.reason = check_output(unit.masked, generation, settings.rules)
            if unit.reason is None:
                try:
                    unit.output = unmask_spans(generation.text.strip(), unit.spans)
                except PlaceholderError:
                    unit.reason = "placeholder_lost"
            if unit.reason is not None:
                failed.append(unit)
        pending = failed
    return _assemble(texts, plans, units, calls)


def _assemble(
    texts: Sequence[str], plans: list[Plan], units: list[_Unit], calls: list[int]
) -> list[TextResult]:
    by_text: dict[int, list[_Unit]] = {}
    for unit in units:
        by_text.setdefault(unit.text_index, []).append(unit)
    results = []
    for index, text in enumerate(texts):
        if plans[index] is None:
            results.append(TextResult(text=text))
            continue
        mine = by_text.get(index, [])
        bad = next((u.reason for u in mine if u.output is None), None)
        if bad is not None:
            results.append(TextResult(text=None, reason=bad, model_calls=calls[index]))
        else:
            translated = reassemble(plans[index] or [], [u.output or "" for u in mine])
            results.append(TextResult(text=translated, model_calls=calls[index]))
    return results
