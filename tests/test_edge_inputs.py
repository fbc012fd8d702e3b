"""Inputs at the edges of what a source file can hold: lone surrogates in JSON, texts of ~100K characters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conftest import ROOT
from hala.errors import SourceReadError
from hala.prepare import normalise_table, read_source
from hala.sources import SOURCES
from hala.sources.schema import decode_json_lists

FIXTURES = ROOT / "fixtures" / "sources"
BIG = 100_000  # characters

# The free-text fields of each source (paths into a row; "*" is every element of a list). Labels,
# ids, roles, subjects and answer letters stay as they are.
TEXT_FIELDS: dict[str, list[tuple[str, ...]]] = {
    "openorca": [("question",), ("response",)],
    "opus100": [("translation", "ar"), ("translation", "en")],
    "hermes3": [("conversations", "*", "value")],
    "scp116k": [("problem",), ("matched_solution",), ("o1_solution",), ("qwq_solution",)],
    "realign_alpaca": [("items", "*", "value")],
    "gptj_pairwise": [("prompt",), ("chosen",), ("rejected",)],
    "lamini": [("instruction",), ("response",)],
    "tulu3": [("messages", "*", "content")],
    "mmlu": [("question",), ("choices", "*")],
    "mmmlu": [("Question",), ("A",), ("B",), ("C",), ("D",)],
}


def _write_jsonl(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder


def _openorca_line(row: str, question: str) -> str:
    """One OpenOrca row; ``question`` is JSON text, escapes included, put in as written."""
    return f'{{"id": "niv.{row}", "system_prompt": "", "question": "{question}", "response": "An answer."}}'


def test_a_lone_surrogate_escaped_in_json_is_a_read_error_naming_source_and_row(tmp_path: Path) -> None:
    """UTF-8 cannot hold U+D800 alone: the split is refused, naming the source, folder and row."""
    folder = _write_jsonl(
        tmp_path / "openorca",
        [
            _openorca_line("1", "Fine."),
            _openorca_line("2", "Also fine."),
            _openorca_line("3", "lone \\ud800 here"),
        ],
    )
    with pytest.raises(SourceReadError) as caught:
        read_source(SOURCES["openorca"], str(folder))
    message = str(caught.value)
    assert "openorca (Open-Orca/OpenOrca)" in message and str(folder) in message
    assert "surrogate" in message and "row 2" in message


def test_a_surrogate_pair_escaped_in_json_is_one_character_and_reads(tmp_path: Path) -> None:
    """A high and a low surrogate escaped together are one code point (U+1F600): read as such."""
    folder = _write_jsonl(tmp_path / "openorca", [_openorca_line("1", "smile \\ud83d\\ude00")])
    table = read_source(SOURCES["openorca"], str(folder))
    assert table.column("question").to_pylist() == ["smile \U0001f600"]


def _enlarge(text: str) -> str:
    """``text`` repeated, line by line, to at least :data:`BIG` characters (blank text stays blank)."""
    if not text.strip():
        return text
    return "\n".join([text] * (BIG // (len(text) + 1) + 1))


def _apply(value: Any, path: tuple[str, ...]) -> Any:
    if not path:
        return _enlarge(value) if isinstance(value, str) else value
    if value is None:
        return None
    head, rest = path[0], path[1:]
    if head == "*":
        return [_apply(item, rest) for item in value]
    return {**value, head: _apply(value.get(head), rest)}


def _fixture(key: str) -> pa.Table:
    spec = SOURCES[key]
    return decode_json_lists(key, read_source(spec, str(FIXTURES / key)), spec.columns)


def _texts(record_messages: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in record_messages]


@pytest.mark.parametrize("key", sorted(TEXT_FIELDS))
def test_texts_of_100k_characters_are_kept_whole_and_change_no_rows_fate(key: str) -> None:
    """Every text field ~100K characters long: same rows kept, same quarantine counts, texts unclipped."""
    spec = SOURCES[key]
    table = _fixture(key)
    rows = table.to_pylist()
    for path in TEXT_FIELDS[key]:
        rows = [{**row, path[0]: _apply(row[path[0]], path[1:])} for row in rows]
    big = pa.Table.from_pylist(rows, schema=table.schema)

    small, large = normalise_table(spec, table), normalise_table(spec, big)
    assert large.read == small.read == table.num_rows
    assert large.read == large.kept.num_rows + large.quarantine.num_rows
    assert large.quarantined_by_reason() == small.quarantined_by_reason()
    assert large.kept.num_rows == small.kept.num_rows  # ids may hash the text, so they differ
    pairs = zip(
        small.kept.column("messages").to_pylist(), large.kept.column("messages").to_pylist(), strict=True
    )
    for before, after in pairs:
        assert len(after) == len(before) and max(len(text) for text in _texts(after)) >= BIG, key
        assert all(len(b) <= len(a) for b, a in zip(_texts(before), _texts(after), strict=True)), key
    # A text passed through as it is comes out whole, character for character (no clipping).
    enlarged = {v.strip() for row in rows for v in _strings(row) if len(v) >= BIG}
    outputs = {t.strip() for m in large.kept.column("messages").to_pylist() for t in _texts(m)}
    assert enlarged & outputs, key


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_a_hyphen_at_a_line_end_is_the_one_line_break_bleu_sees_and_table2_scores_the_one_line_form() -> None:
    """What translation.one_line's docstring states: 13a joins "-\\n", chrF++ ignores the break kind."""
    from sacrebleu.metrics import CHRF
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    from hala.evaluation.translation import one_line

    raw = "the co-\noperative shop"
    assert Tokenizer13a()(raw) == "the cooperative shop"
    assert Tokenizer13a()(one_line(raw)) == "the co- operative shop"
    chrf = CHRF(word_order=2)
    reference = ["the cooperative shop"]
    assert chrf.sentence_score(raw, reference).score == chrf.sentence_score(one_line(raw), reference).score


def test_table2_scores_what_its_files_hold_so_the_files_reproduce_the_numbers(tmp_path: Path) -> None:
    """An output with line breaks (a hyphen at a line end too) is scored in its one-line form."""
    from hala.evaluation.translation import evaluate_system
    from hala.metrics import read_lines, translation_metrics

    pairs = [
        ("The cooperative shop opens at nine.", "يفتح المتجر التعاوني في التاسعة."),
        ("Hello.", "مرحبا."),
    ]
    result = evaluate_system("sys", lambda texts: ["المتجر التعا-\nوني\nيفتح", "مرحبا."], pairs, tmp_path)
    folder = Path(result["dir"])
    hyps, refs = read_lines(folder / "hypotheses.ar.txt"), read_lines(folder / "references.ar.txt")
    assert hyps[0] == "المتجر التعا- وني يفتح" and len(hyps) == len(refs) == 2
    assert {k: result[k] for k in ("bleu", "chrf", "rouge_l", "rouge_l_arabic")} == translation_metrics(
        hyps, refs
    )
