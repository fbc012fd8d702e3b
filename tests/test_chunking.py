"""Chunking for translation: exact reassembly, structure kept out of the model, budgets, span masking."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

import pytest

from hala.translate.chunking import (
    PlaceholderError,
    Segment,
    is_translatable,
    mask_spans,
    reassemble,
    split_for_translation,
    unmask_spans,
)


def _long_text() -> str:
    rng = random.Random(7)
    words = ["model", "data", "translate", "Arabic", "the", "of", "quickly", "pipeline", "token", "value"]
    paragraphs = []
    while sum(len(p) + 2 for p in paragraphs) < 10_000:
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 25))).capitalize() + rng.choice(".!?")
            for _ in range(rng.randint(1, 8))
        ]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


LONG_TEXT = _long_text()

CORPUS = {
    "english": "The quick brown fox jumps over the lazy dog. It was not amused! Why would it be?\n"
    "A second line follows; it has clauses, commas, and more words than needed.",
    "arabic": "مرحبا بكم في هذا الدرس. هل أنتم مستعدون؟ نبدأ الآن۔ ثم نكمل، بهدوء؛ وبعناية.",
    "headings": "# Title\n\n## Sub title ##\n###### Deep heading\n#hashtag is not a heading\n",
    "lists": "- first item\n* second item\n+ third item\n  - nested item\n    - deeper item\n"
    "1. ordered one\n2) ordered two\n10. ordered ten\n",
    "quotes": "> a quoted line\n> > nested quote\n> - quoted bullet\n>\n",
    "table": "| Name | Value |\n|:-----|------:|\n| alpha | 12 |\n| beta gamma | `x|y` |\n"
    "  | indented | row |\n",
    "fence_lang": "Intro text.\n\n```python\ndef f(x):\n    return x  # a comment\n```\n\nOutro text.",
    "fence_plain": "Before.\n```\nplain code here\n```\nAfter.\n",
    "fence_tilde": "~~~~ js\nconsole.log('hi')\n~~~\nstill code\n~~~~\nText after.\n",
    "fence_unclosed": "Some prose.\n\n```bash\necho unclosed\nls -la\n",
    "inline_code": "Call `print()` or ``a ` b`` to show output, then `exit`.",
    "urls": "See https://example.com/a?b=c, www.example.org and ftp://files.example.net/x.tar.gz now.",
    "links": 'Read [the guide](https://example.com/guide "Guide") and [docs](./docs/index.md) first.',
    "latex": "Solve $x^2 + 1 = 0$ and $$\\int_0^1 f(x)\\,dx$$ with \\(a+b\\) and \\[c = d\\].",
    "emails": "Write to help@example.com or first.last+tag@mail.example.co.uk for help.",
    "numbers": "12345\n3.14 + 2 = 5.14\n---\n***\n(1) [2] {3}\n",
    "crlf": "# Title\r\n\r\nFirst line.\r\nSecond line.\r\n- item\r\n| a | b |\r\n```\r\ncode\r\n```\r\n",
    "trailing_ws": "  Leading and trailing spaces.   \n\tTabbed line\t\n\n\n   ",
    "placeholder_literal": "The text ⟦0⟧ and ⟦ 1 ⟧ look like placeholders but are not.",
    "dollars": "It costs $5 and $10, or $5-$10 in total.",
    "empty": "",
    "whitespace_only": " \n\t\n",
    "long": LONG_TEXT,
}

BUDGETS = [1, 7, 40, 500, 100_000]


def _words(text: str) -> int:
    return len(text.split())


def _check_invariants(text: str, segments: list[Segment]) -> None:
    assert "".join(s.text for s in segments) == text
    assert all(s.text for s in segments), "no empty segments"
    for left, right in itertools.pairwise(segments):
        assert left.translate or right.translate, "adjacent pass-through segments are merged"
    for segment in segments:
        if segment.translate:
            assert segment.text == segment.text.strip(), repr(segment.text)
            assert is_translatable(segment.text)
    translations = [s.text for s in segments if s.translate]
    assert reassemble(segments, translations) == text


@pytest.mark.parametrize("max_units", BUDGETS)
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_segments_concatenate_to_the_input(name: str, max_units: int) -> None:
    text = CORPUS[name]
    _check_invariants(text, split_for_translation(text, max_units))
    _check_invariants(text, split_for_translation(text, max_units, measure=_words))


def test_corpus_is_rich_enough() -> None:
    assert len(CORPUS) >= 15
    assert len(LONG_TEXT) >= 10_000 and LONG_TEXT.count("\n\n") > 10


def test_random_mixtures_concatenate_to_the_input() -> None:
    rng = random.Random(0)
    pieces = list(CORPUS.values())
    joins = ["\n", "\n\n", " ", "", "\r\n", "\n  \n"]
    for _ in range(300):
        parts = [rng.choice(pieces)[: rng.randint(0, 400)] for _ in range(rng.randint(1, 4))]
        text = rng.choice(joins).join(parts)
        _check_invariants(text, split_for_translation(text, rng.choice(BUDGETS)))


def _assert_within_budget(text: str, max_units: int, measure: Callable[[str], int]) -> int:
    """Every translatable segment fits, or is one word once spans are masked; returns how many do not fit."""
    over = 0
    for segment in split_for_translation(text, max_units, measure):
        if segment.translate and measure(segment.text) > max_units:
            over += 1
            masked, _ = mask_spans(segment.text)
            assert not re.search(r"\s", masked), f"splittable segment over budget: {segment.text!r}"
    return over


@pytest.mark.parametrize("max_units", [1, 7, 40, 300])
def test_translatable_segments_fit_the_character_budget_unless_one_word(max_units: int) -> None:
    over = sum(_assert_within_budget(text, max_units, len) for text in CORPUS.values())
    if max_units == 1:
        assert over > 0, "words longer than the budget stay whole"
    if max_units >= 300:
        assert over == 0


def test_long_text_fits_the_budget_in_many_segments() -> None:
    segments = split_for_translation(LONG_TEXT, 200)
    translatable = [s for s in segments if s.translate]
    assert len(translatable) > 50
    assert all(len(s.text) <= 200 for s in translatable)
    assert max(len(s.text) for s in translatable) > 100, "sentences are packed together up to the budget"


@pytest.mark.parametrize("max_units", [1, 3, 10])
def test_translatable_segments_fit_a_word_budget(max_units: int) -> None:
    for text in CORPUS.values():
        _assert_within_budget(text, max_units, _words)
    segments = split_for_translation(CORPUS["english"], max_units, measure=_words)
    assert all(_words(s.text) <= max_units for s in segments if s.translate)
    assert sum(s.translate for s in segments) >= 27 // max_units


def test_masked_span_with_spaces_counts_as_one_unsplittable_piece() -> None:
    segments = split_for_translation('Read [the guide](https://e.com/g "A B") today', 1, measure=_words)
    assert Segment('guide](https://e.com/g "A B")', True) in segments


def test_short_paragraph_is_one_segment() -> None:
    text = "One sentence. Two sentences.\nA wrapped line."
    assert split_for_translation(text, 1000) == [Segment(text, True)]


def test_sentences_keep_their_final_punctuation() -> None:
    text = 'First sentence here. Second one is here! Third one? He said "stop." Then left.'
    pieces = [s.text for s in split_for_translation(text, 25) if s.translate]
    expected = ["First sentence here.", "Second one is here!", "Third one?", 'He said "stop."', "Then left."]
    assert pieces == expected


@pytest.mark.parametrize(
    ("text", "max_units", "expected"),
    [
        # Word-by-word packing would give "Hi there. This sentence is" / "long enough.".
        ("Hi there. This sentence is long enough.", 30, ["Hi there.", "This sentence is long enough."]),
        ('He said "stop." Then he left the room.', 30, ['He said "stop."', "Then he left the room."]),
        (
            "هل أنت بخير اليوم؟ نعم أنا بخير جدا۔ شكرا لك.",
            20,
            ["هل أنت بخير اليوم؟", "نعم أنا بخير جدا۔", "شكرا لك."],
        ),
        ("هل أنت بخير؟ نعم أنا بخير جدا اليوم۔ شكرا.", 30, ["هل أنت بخير؟", "نعم أنا بخير جدا اليوم۔ شكرا."]),
    ],
)
def test_sentences_are_preferred_split_points(text: str, max_units: int, expected: list[str]) -> None:
    assert [s.text for s in split_for_translation(text, max_units) if s.translate] == expected


def test_newlines_split_a_long_paragraph() -> None:
    # Word-by-word packing would give "short line\nthen a" / "longer line".
    text = "short line\nthen a longer line"
    assert split_for_translation(text, 20) == [
        Segment("short line", True),
        Segment("\n", False),
        Segment("then a longer line", True),
    ]


@pytest.mark.parametrize(
    ("text", "max_units", "expected"),
    [
        (
            "alpha beta gamma, delta epsilon; zeta eta theta iota kappa",
            18,
            ["alpha beta gamma,", "delta epsilon;", "zeta eta theta", "iota kappa"],
        ),
        # Word-by-word packing would give "one, two three four" / "five six".
        ("one, two three four five six", 20, ["one,", "two three four five", "six"]),
        ("first: a b c d e f g h", 12, ["first:", "a b c d e f", "g h"]),
        ("أولا، ثم ثانيا ثالثا رابعا خامسا", 20, ["أولا،", "ثم ثانيا ثالثا رابعا", "خامسا"]),
    ],
)
def test_long_sentence_splits_at_clauses_then_words(text: str, max_units: int, expected: list[str]) -> None:
    assert [s.text for s in split_for_translation(text, max_units) if s.translate] == expected


def test_separators_between_pieces_are_not_translated() -> None:
    segments = split_for_translation("One two.   Three four.", 12)
    assert segments == [Segment("One two.", True), Segment("   ", False), Segment("Three four.", True)]


def test_word_longer_than_budget_stays_whole() -> None:
    word = "Pneumonoultramicroscopicsilicovolcanoconiosis"
    segments = split_for_translation(f"a {word} b", 5)
    assert Segment(word, True) in segments


def test_masked_span_is_not_split() -> None:
    text = "Run `pip install my package` now please"
    segments = split_for_translation(text, 10)
    assert [s.text for s in segments if s.translate] == ["Run", "now please"]
    assert Segment(" `pip install my package` ", False) in segments


def test_max_units_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_units"):
        split_for_translation("text", 0)


@pytest.mark.parametrize(
    "block",
    [
        "```python\nx = 1\n\ny = 2\n```\n",
        "```\nno language # heading?\n- not a bullet\n```\n",
        "~~~\ntilde fence\n~~~\n",
        "````md\n```\ninner fence\n```\n````\n",
        "  ```js\n  indented();\n  ```\n",
    ],
)
def test_fenced_code_is_one_pass_through_segment(block: str) -> None:
    segments = split_for_translation(f"Before text.\n\n{block}\nAfter text.", 1000)
    assert segments == [
        Segment("Before text.", True),
        Segment(f"\n\n{block}\n", False),
        Segment("After text.", True),
    ]


def test_fence_ends_at_its_closing_line() -> None:
    text = "Before.\n```\ncode\n```\nAfter.\n~~~\n```\n~~~\nEnd."
    assert split_for_translation(text, 1000) == [
        Segment("Before.", True),
        Segment("\n```\ncode\n```\n", False),
        Segment("After.", True),
        Segment("\n~~~\n```\n~~~\n", False),
        Segment("End.", True),
    ]


def test_unclosed_fence_runs_to_the_end() -> None:
    text = "Intro.\n```python\nprint('x')\nMore words here."
    assert split_for_translation(text, 1000) == [
        Segment("Intro.", True),
        Segment("\n```python\nprint('x')\nMore words here.", False),
    ]


def test_markdown_prefixes_are_not_translated() -> None:
    text = "## Heading text\n- bullet\n    * nested bullet\n3. ordered\n4) other\n> quote\n> > deep"
    segments = split_for_translation(text, 1000)
    assert [s.text for s in segments if s.translate] == [
        "Heading text",
        "bullet",
        "nested bullet",
        "ordered",
        "other",
        "quote",
        "deep",
    ]
    assert [s.text for s in segments if not s.translate] == [
        "## ",
        "\n- ",
        "\n    * ",
        "\n3. ",
        "\n4) ",
        "\n> ",
        "\n> > ",
    ]


def test_markers_without_space_are_prose() -> None:
    text = "#tag and *emphasis* and -5 degrees"
    assert split_for_translation(text, 1000) == [Segment(text, True)]


def test_outer_whitespace_moves_out_of_translatable_pieces() -> None:
    assert split_for_translation("  \t Hello there.  \n", 1000) == [
        Segment("  \t ", False),
        Segment("Hello there.", True),
        Segment("  \n", False),
    ]


def test_table_cells_are_translated_and_pipes_kept() -> None:
    text = "| Name | Notes |\n|---|:---:|\n| tea | hot drink |\n| 42 | |\n"
    segments = split_for_translation(text, 1000)
    assert [s.text for s in segments if s.translate] == ["Name", "Notes", "tea", "hot drink"]
    assert Segment(" |\n|---|:---:|\n| ", False) in segments
    assert segments[-1] == Segment(" |\n| 42 | |\n", False)


def test_letterless_pieces_pass_through() -> None:
    text = "12345\n\n- 3.14\n- https://example.com/x\n- `code()`\n| 1 | 2 |\n"
    assert split_for_translation(text, 1000) == [Segment(text, False)]


def test_crlf_line_endings_are_kept_out_of_segments() -> None:
    text = "# Title\r\n\r\nFirst line.\r\n- item\r\n"
    segments = split_for_translation(text, 1000)
    assert [s.text for s in segments if s.translate] == ["Title", "First line.", "item"]
    assert segments[2] == Segment("\r\n\r\n", False)
    assert not any("\r" in s.text for s in segments if s.translate)


def _fake_translate(segment: str) -> str:
    masked, spans = mask_spans(segment)
    return unmask_spans(masked.upper(), spans)


def test_reassemble_with_translations_keeps_structure_byte_identical() -> None:
    code = "```python\ndef greet(name):\n    return f'hello {name}'\n```\n"
    text = (
        "# getting started\n\n"
        "- install from https://example.com/install and read [the docs](https://example.com/docs).\n"
        "  1. run `make test` first\n\n"
        "| option | meaning |\n|:--|--:|\n| fast | skip checks |\n\n"
        f"{code}\n"
        "> send mail to help@example.com. done."
    )
    segments = split_for_translation(text, 40)
    out = reassemble(segments, [_fake_translate(s.text) for s in segments if s.translate])
    assert out == (
        "# GETTING STARTED\n\n"
        "- INSTALL FROM https://example.com/install AND READ [THE DOCS](https://example.com/docs).\n"
        "  1. RUN `make test` FIRST\n\n"
        "| OPTION | MEANING |\n|:--|--:|\n| FAST | SKIP CHECKS |\n\n"
        f"{code}\n"
        "> SEND MAIL TO help@example.com. DONE."
    )


def test_reassemble_rejects_a_count_mismatch() -> None:
    segments = split_for_translation("- one\n- two\n", 100)
    assert sum(s.translate for s in segments) == 2
    with pytest.raises(ValueError, match=r"expected 2 .*got 1"):
        reassemble(segments, ["uno"])
    with pytest.raises(ValueError, match=r"expected 2 .*got 3"):
        reassemble(segments, ["uno", "dos", "tres"])
    assert reassemble(segments, ["uno", "dos"]) == "- uno\n- dos\n"


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("Use `ls -la` and ``a ` b``.", ["`ls -la`", "``a ` b``"]),
        ("Go to https://x.org/a_b?c=1. Or www.y.com!", ["https://x.org/a_b?c=1", "www.y.com"]),
        ('See [the guide](http://g.io/p "T") now', ['(http://g.io/p "T")']),
        ("[local](./a/b.md)", ["(./a/b.md)"]),
        ("Mail a.b+c@d.example.com, please.", ["a.b+c@d.example.com"]),
        ("ftp://f.net/x.gz", ["ftp://f.net/x.gz"]),
        ("Math $a+b$, $$\\sum x$$, \\(y\\) and \\[z\\]", ["$a+b$", "$$\\sum x$$", "\\(y\\)", "\\[z\\]"]),
        ("It costs $5 and $10.", []),
    ],
)
def test_mask_spans_finds_the_spans(text: str, spans: list[str]) -> None:
    masked, found = mask_spans(text)
    assert found == spans
    for index, span in enumerate(spans):
        assert f"⟦{index}⟧" in masked
        assert span not in masked
    assert unmask_spans(masked, found) == text


def test_literal_placeholders_in_the_input_are_masked_too() -> None:
    assert mask_spans("`x` then ⟦0⟧") == ("⟦0⟧ then ⟦1⟧", ["`x`", "⟦0⟧"])
    assert unmask_spans("⟦1⟧ ⟦0⟧", ["`x`", "⟦0⟧"]) == "⟦0⟧ `x`"


def test_link_text_stays_translatable() -> None:
    masked, spans = mask_spans("Read [the guide](https://e.com/g) today")
    assert masked == "Read [the guide]⟦0⟧ today"
    assert spans == ["(https://e.com/g)"]


def test_mask_round_trip_over_the_corpus() -> None:
    for text in CORPUS.values():
        masked, spans = mask_spans(text)
        assert unmask_spans(masked, spans) == text
    masked, spans = mask_spans(CORPUS["placeholder_literal"])
    assert spans == ["⟦0⟧", "⟦ 1 ⟧"]


def test_unmask_accepts_reordered_and_loosely_written_placeholders() -> None:
    assert unmask_spans("⟦ 1 ⟧ then ⟦٠⟧", ["`a`", "`b`"]) == "`b` then `a`"


@pytest.mark.parametrize(
    ("output", "missing", "duplicated", "invented"),
    [
        ("only ⟦0⟧ here", [1], [], []),
        ("⟦0⟧ ⟦0⟧ ⟦1⟧", [], [0], []),
        ("⟦0⟧ ⟦1⟧ ⟦2⟧", [], [], [2]),
        ("nothing left", [0, 1], [], []),
    ],
)
def test_unmask_rejects_lost_duplicated_or_invented_placeholders(
    output: str, missing: list[int], duplicated: list[int], invented: list[int]
) -> None:
    with pytest.raises(PlaceholderError) as info:
        unmask_spans(output, ["`a`", "`b`"])
    assert isinstance(info.value, ValueError)
    assert (info.value.missing, info.value.duplicated, info.value.invented) == (missing, duplicated, invented)
    for index in missing + duplicated + invented:
        assert str(index) in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("  \n\t", False),
        ("12345", False),
        ("3.14 + 2 = 5.14 (approx.) — ok?!", True),
        ("3.14 + 2 = 5.14 — !?", False),
        ("https://example.com/path", False),
        ("`code()` $x$ help@example.com", False),
        ("⟦0⟧", False),
        ("a", True),
        ("Hello", True),
        ("مرحبا", True),
        ("你好", True),
        ("See https://example.com", True),
    ],
)
def test_is_translatable(text: str, expected: bool) -> None:
    assert is_translatable(text) is expected
