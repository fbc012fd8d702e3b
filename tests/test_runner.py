"""Translating texts and records: pass-through, structure kept, chunk budget, retries, quarantine."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pyarrow as pa
import pytest

from hala.sources import RECORD_SCHEMA
from hala.translate.chunking import mask_spans
from hala.translate.conversations import (
    TEACHER_SCHEMA,
    TRANSLATED_SCHEMA,
    TRANSLATION_QUARANTINE_SCHEMA,
    teacher_tuples,
    translate_records,
)
from hala.translate.engines import FinishReason, Generation, GenerationSettings, Message
from hala.translate.quality import QualityRules
from hala.translate.runner import TextResult, TranslateSettings, translate_texts

PROMPT = "Translate into Arabic:\n{x}"
PREFIX = PROMPT.split("{x}")[0]
PLACEHOLDER = re.compile(r"⟦\d+⟧")

Reply = Callable[[str, GenerationSettings], "str | tuple[str, FinishReason]"]


class ScriptedEngine:
    """A stand-in for the model at the process boundary (the ``Engine`` protocol, no weights).

    ``count_tokens`` counts whitespace-separated words. ``chat`` records every conversation and the
    settings it came with, then answers each one with ``reply(masked_text, settings)``: the text to
    return, or ``(text, finish_reason)``.
    """

    max_model_len = 4096

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.batches: list[tuple[list[list[Message]], GenerationSettings]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def chat(self, conversations: Sequence[list[Message]], settings: GenerationSettings) -> list[Generation]:
        self.batches.append(([list(c) for c in conversations], settings))
        out = []
        for conversation in conversations:
            content = conversation[-1]["content"]
            assert content.startswith(PREFIX)
            answer = self.reply(content[len(PREFIX) :], settings)
            text, reason = answer if isinstance(answer, tuple) else (answer, "stop")
            out.append(Generation(text, reason, self.count_tokens(content), self.count_tokens(text)))
        return out

    @property
    def prompts(self) -> list[str]:
        return [c[-1]["content"] for batch, _ in self.batches for c in batch]

    @property
    def sources(self) -> list[str]:
        """The masked texts the engine was asked to translate, in order."""
        return [p[len(PREFIX) :] for p in self.prompts]


def upper(text: str, _: GenerationSettings) -> str:
    """A "translation" that uppercases prose and keeps placeholders (digits are unchanged)."""
    return text.upper()


LATIN = QualityRules(target_script="latin")
SETTINGS = TranslateSettings(prompt=PROMPT, rules=LATIN)


# --- pass-through ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\n\t\n",
        "```python\ndef main():\n    return 1\n```\n",
        "`pip install hala`",
        "https://example.com/docs?page=2",
        "12 + 34 = 46",
        "$$x^2 + y^2$$",
        "| 1 | 2 |\n|---|---|\n| 3 | 4 |\n",
    ],
)
def test_non_translatable_text_passes_through_without_a_call(text: str) -> None:
    engine = ScriptedEngine(upper)
    assert translate_texts(engine, [text], SETTINGS) == [TextResult(text=text, reason=None, model_calls=0)]
    assert engine.batches == []


def test_no_texts_no_calls() -> None:
    engine = ScriptedEngine(upper)
    assert translate_texts(engine, [], SETTINGS) == []
    assert engine.batches == []


MARKDOWN = (
    "# Getting started\n"
    "\n"
    "Install the package from https://example.com/pkg and run `pip install hala` first.\n"
    "\n"
    "```python\n"
    "def main():\n"
    '    print("hello world")\n'
    "```\n"
    "\n"
    "| Name | Value |\n"
    "|------|-------|\n"
    "| alpha | one |\n"
    "\n"
    "See the docs.\n"
)
MARKDOWN_UPPER = (
    "# GETTING STARTED\n"
    "\n"
    "INSTALL THE PACKAGE FROM https://example.com/pkg AND RUN `pip install hala` FIRST.\n"
    "\n"
    "```python\n"
    "def main():\n"
    '    print("hello world")\n'
    "```\n"
    "\n"
    "| NAME | VALUE |\n"
    "|------|-------|\n"
    "| ALPHA | ONE |\n"
    "\n"
    "SEE THE DOCS.\n"
)


def test_markdown_structure_code_urls_and_inline_code_are_kept() -> None:
    engine = ScriptedEngine(upper)
    [result] = translate_texts(engine, [MARKDOWN], SETTINGS)
    # model_calls counts generations: one per prose segment, all sent in one batch.
    assert result == TextResult(text=MARKDOWN_UPPER, reason=None, model_calls=7)
    assert len(engine.batches) == 1
    assert engine.sources == [
        "Getting started",
        "Install the package from ⟦0⟧ and run ⟦1⟧ first.",
        "Name",
        "Value",
        "alpha",
        "one",
        "See the docs.",
    ]
    for prompt in engine.prompts:
        assert "example.com" not in prompt
        assert "pip install" not in prompt
        assert "print(" not in prompt
        assert "|" not in prompt


def test_prompts_use_the_settings_prompt_and_first_attempt_settings() -> None:
    engine = ScriptedEngine(upper)
    settings = TranslateSettings(prompt=PROMPT, rules=LATIN, generation=GenerationSettings(max_new_tokens=77))
    text = "Read https://example.com now."
    translate_texts(engine, [text, "Hello there."], settings)
    [(conversations, used)] = engine.batches
    masked, spans = mask_spans(text)
    assert spans == ["https://example.com"]
    assert conversations == [
        [{"role": "user", "content": PROMPT.format(x=masked)}],
        [{"role": "user", "content": PROMPT.format(x="Hello there.")}],
    ]
    assert used is settings.generation


def test_results_are_in_input_order_with_pass_through_mixed_in() -> None:
    engine = ScriptedEngine(upper)
    texts = ["first text", "", "`code`", "second text", "third"]
    results = translate_texts(engine, texts, SETTINGS)
    assert [r.text for r in results] == ["FIRST TEXT", "", "`code`", "SECOND TEXT", "THIRD"]
    assert [r.model_calls for r in results] == [1, 0, 0, 1, 1]
    # One batched call for every unit of every text.
    assert len(engine.batches) == 1


WORDS = ("the", "model", "reads", "every", "word", "of", "this", "long", "sentence", "and", "then", "writes")


def _long_text() -> str:
    words = WORDS
    sentences = []
    for i in range(40):
        n = 5 + (i * 7) % 19
        sentences.append(" ".join(words[(i + j) % len(words)] for j in range(n)).capitalize() + ".")
    paragraph = " ".join(sentences[:20]) + " " + ", ".join(s.rstrip(".") for s in sentences[20:]) + "."
    return paragraph + "\n\nVisit https://example.com/a/very/long/path for `more` details.\n"


@pytest.mark.parametrize("budget", [8, 20, 64])
def test_long_text_is_split_within_the_word_budget(budget: int) -> None:
    text = _long_text()
    assert len(text.split()) > 5 * budget
    engine = ScriptedEngine(lambda x, _: x)  # identity: the reassembled text must be the input
    settings = TranslateSettings(prompt=PROMPT, rules=LATIN, max_input_tokens=budget)
    [result] = translate_texts(engine, [text], settings)
    assert result.text == text
    assert len(engine.sources) > 1
    for source in engine.sources:
        assert 1 <= len(source.split()) <= budget
    assert result.model_calls == len(engine.sources)


def test_dropped_placeholder_is_retried_with_retry_settings() -> None:
    def reply(x: str, settings: GenerationSettings) -> str:
        if settings is SETTINGS.generation and "⟦0⟧" in x:
            return PLACEHOLDER.sub("", x).upper()  # first attempt: placeholder lost
        return x.upper()

    engine = ScriptedEngine(reply)
    texts = ["See https://example.com for details.", "No spans here."]
    results = translate_texts(engine, texts, SETTINGS)
    assert results == [
        TextResult(text="SEE https://example.com FOR DETAILS.", reason=None, model_calls=2),
        TextResult(text="NO SPANS HERE.", reason=None, model_calls=1),
    ]
    assert len(engine.batches) == 2
    (first, first_settings), (second, second_settings) = engine.batches
    assert first_settings is SETTINGS.generation
    assert second_settings is SETTINGS.retry
    assert second_settings.temperature > 0
    # Only the failing unit is sent again, with the same prompt.
    assert second == [first[0]]


def test_retry_settings_come_from_the_settings() -> None:
    retry = GenerationSettings(max_new_tokens=9, temperature=0.3, seed=5)
    settings = TranslateSettings(prompt=PROMPT, rules=LATIN, retry=retry, max_attempts=3)
    engine = ScriptedEngine(lambda x, s: "" if s is settings.generation else x.upper())
    assert translate_texts(engine, ["Hello."], settings) == [TextResult("HELLO.", None, 2)]
    assert [s for _, s in engine.batches] == [settings.generation, retry]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (lambda x, _: "مرحبا بكم في الموقع", "placeholder_lost"),  # Arabic, but ⟦0⟧ is gone
        (lambda x, _: "  \n", "empty_output"),
        (lambda x, _: ("زوروا الموقع ⟦0⟧ الآن", "length"), "truncated"),
        (lambda x, _: x.upper(), "wrong_script"),  # still English
        (lambda x, _: "زوروا الموقع ⟦0⟧ الآن " * 30, "repetition"),
        (lambda x, _: "زوروا ⟦0⟧ و ⟦0⟧ الآن", "placeholder_lost"),  # duplicated
        (lambda x, _: "زوروا ⟦0⟧ و ⟦7⟧ الآن", "placeholder_lost"),  # invented
    ],
)
@pytest.mark.parametrize("max_attempts", [1, 2, 3])
def test_text_failing_every_attempt_reports_the_reason(reply: Reply, reason: str, max_attempts: int) -> None:
    engine = ScriptedEngine(reply)
    settings = TranslateSettings(prompt=PROMPT, max_attempts=max_attempts)  # default rules: Arabic target
    texts = ["Visit https://example.com now.", "`only code`"]
    results = translate_texts(engine, texts, settings)
    assert results == [
        TextResult(text=None, reason=reason, model_calls=max_attempts),
        TextResult(text="`only code`", reason=None, model_calls=0),
    ]
    assert len(engine.batches) == max_attempts
    assert [s for _, s in engine.batches] == [settings.generation] + [settings.retry] * (max_attempts - 1)


def test_arabic_reply_keeping_placeholders_passes_default_rules() -> None:
    # The control for the failures above: the same text, a well-formed Arabic reply, one call.
    engine = ScriptedEngine(lambda x, _: "زوروا ⟦0⟧ الآن")
    settings = TranslateSettings(prompt=PROMPT)
    assert translate_texts(engine, ["Visit https://example.com now."], settings) == [
        TextResult(text="زوروا https://example.com الآن", reason=None, model_calls=1)
    ]


def test_one_failing_segment_fails_the_whole_text() -> None:
    text = "Good sentence here.\n\nBAD sentence here.\n\nAnother good one."
    engine = ScriptedEngine(lambda x, _: "" if x.startswith("BAD") else x.upper())
    [result] = translate_texts(engine, [text], TranslateSettings(prompt=PROMPT, rules=LATIN))
    assert result.text is None
    assert result.reason == "empty_output"
    # Three units on the first attempt, the failing one again on the retry.
    assert result.model_calls == 4


# --- records --------------------------------------------------------------------------------------


def _records(rows: list[tuple[str, list[tuple[str, str]]]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "id": rid,
                "source": "openorca",
                "messages": [{"role": r, "content": c} for r, c in turns],
                "meta": f'{{"row": "{rid}"}}',
            }
            for rid, turns in rows
        ],
        schema=RECORD_SCHEMA,
    )


def _fail_marked(x: str, _: GenerationSettings) -> str:
    return "" if "FAILME" in x else x.upper()


def test_translate_records_quarantines_whole_record_naming_the_failing_turn() -> None:
    records = _records(
        [
            ("r1", [("system", "Be brief."), ("user", "What is two plus two?"), ("assistant", "Four.")]),
            ("r2", [("user", "Hello there."), ("assistant", "FAILME please."), ("user", "Thanks.")]),
            ("r3", [("user", "Name a colour."), ("assistant", "Blue, see `blue` and https://x.org.")]),
            ("r4", [("user", "FAILME first"), ("assistant", "FAILME second")]),
        ]
    )
    translated, quarantine = translate_records(ScriptedEngine(_fail_marked), records, SETTINGS)

    assert translated.schema == TRANSLATED_SCHEMA
    assert quarantine.schema == TRANSLATION_QUARANTINE_SCHEMA
    assert quarantine.to_pylist() == [
        {"id": "r2", "reason": "empty_output", "column": "messages[1].content"},
        {"id": "r4", "reason": "empty_output", "column": "messages[0].content"},
    ]
    rows = translated.to_pylist()
    assert [r["id"] for r in rows] == ["r1", "r3"]
    originals = {r["id"]: r for r in records.to_pylist()}
    for row in rows:
        original = originals[row["id"]]
        assert row["messages_en"] == original["messages"]
        assert row["source"] == original["source"]
        assert row["meta"] == original["meta"]
    assert rows[0]["messages"] == [
        {"role": "system", "content": "BE BRIEF."},
        {"role": "user", "content": "WHAT IS TWO PLUS TWO?"},
        {"role": "assistant", "content": "FOUR."},
    ]
    assert rows[1]["messages"] == [
        {"role": "user", "content": "NAME A COLOUR."},
        {"role": "assistant", "content": "BLUE, SEE `blue` AND https://x.org."},
    ]


def test_translate_records_with_every_record_failing_or_none() -> None:
    records = _records([("r1", [("user", "FAILME")])])
    translated, quarantine = translate_records(ScriptedEngine(_fail_marked), records, SETTINGS)
    assert translated.num_rows == 0
    assert translated.schema == TRANSLATED_SCHEMA
    assert quarantine.column("id").to_pylist() == ["r1"]

    translated, quarantine = translate_records(ScriptedEngine(upper), _records([]), SETTINGS)
    assert (translated.num_rows, quarantine.num_rows) == (0, 0)


def test_teacher_tuples_maps_roles_to_columns() -> None:
    records = _records(
        [
            ("a", [("system", "You are a tutor."), ("user", "Explain rain."), ("assistant", "Water falls.")]),
            ("b", [("system", ""), ("user", "Say hi."), ("assistant", "Hi.")]),
            ("c", [("user", "No system turn."), ("assistant", "Fine.")]),
        ]
    )
    translated, quarantine = translate_records(ScriptedEngine(upper), records, SETTINGS)
    assert quarantine.num_rows == 0
    tuples = teacher_tuples(translated)
    assert tuples.schema == TEACHER_SCHEMA
    assert tuples.to_pylist() == [
        {
            "id": "a",
            "system_en": "You are a tutor.",
            "system_ar": "YOU ARE A TUTOR.",
            "instr_en": "Explain rain.",
            "instr_ar": "EXPLAIN RAIN.",
            "resp_en": "Water falls.",
            "resp_ar": "WATER FALLS.",
        },
        {
            "id": "b",
            "system_en": "",
            "system_ar": "",
            "instr_en": "Say hi.",
            "instr_ar": "SAY HI.",
            "resp_en": "Hi.",
            "resp_ar": "HI.",
        },
        {
            "id": "c",
            "system_en": "",
            "system_ar": "",
            "instr_en": "No system turn.",
            "instr_ar": "NO SYSTEM TURN.",
            "resp_en": "Fine.",
            "resp_ar": "FINE.",
        },
    ]
