"""Output checks on translations: empty, truncated, runaway repetition, wrong script."""

from __future__ import annotations

import pytest

from hala.translate.engines import FinishReason, Generation
from hala.translate.quality import QualityRules, check_output, compression_ratio, script_ratio

SOURCE = "The committee met on Tuesday to discuss the budget for the coming year."
ARABIC = "اجتمعت اللجنة يوم الثلاثاء لمناقشة ميزانية العام المقبل."
ARABIC_PARAGRAPH = (
    "اجتمعت اللجنة يوم الثلاثاء لمناقشة ميزانية العام المقبل، وقدم الأعضاء مقترحات مختلفة حول "
    "تمويل المدارس والمستشفيات والطرق. وأكد رئيس اللجنة أن الحكومة ستنشر التقرير النهائي في نهاية "
    "الشهر، بعد مراجعة الملاحظات التي وردت من المواطنين والخبراء. كما ناقش الحضور خطة جديدة لدعم "
    "المشاريع الصغيرة في المناطق الريفية، وطالب بعضهم بزيادة الشفافية في الإنفاق العام."
)
ENGLISH_PARAGRAPH = (
    "The committee met on Tuesday to discuss the budget for the coming year, and members brought "
    "different proposals for funding schools, hospitals and roads. The chair stressed that the "
    "government would publish the final report at the end of the month, after reviewing the comments "
    "received from citizens and experts. Those present also discussed a new plan to support small "
    "businesses in rural areas, and some of them asked for more transparency in public spending."
)
RULES = QualityRules()


def _gen(text: str, finish_reason: FinishReason = "stop") -> Generation:
    return Generation(text=text, finish_reason=finish_reason, prompt_tokens=10, completion_tokens=10)


# --- script_ratio and compression_ratio -----------------------------------------------------------


def test_script_ratio_of_arabic_and_latin_text() -> None:
    assert script_ratio(ARABIC, "arabic") == 1.0
    assert script_ratio(ARABIC, "latin") == 0.0
    assert script_ratio(SOURCE, "latin") == 1.0
    assert script_ratio(SOURCE, "arabic") == 0.0


def test_script_ratio_counts_letters_only() -> None:
    # 4 Arabic letters, 4 Latin letters; digits, punctuation and spaces do not count.
    mixed = "مرحب abcd 1234 !?"
    assert script_ratio(mixed, "arabic") == pytest.approx(0.5)
    assert script_ratio(mixed, "latin") == pytest.approx(0.5)
    assert script_ratio("ملف data", "arabic") == pytest.approx(3 / 7)


def test_script_ratio_is_one_without_letters() -> None:
    assert script_ratio("", "arabic") == 1.0
    assert script_ratio("12 + 34 = 46 ⟦0⟧ ⟦1⟧", "arabic") == 1.0
    assert script_ratio("12 + 34 = 46 ⟦0⟧ ⟦1⟧", "latin") == 1.0


@pytest.mark.parametrize(
    ("text", "script"),
    [("٣٤٥ ، ٦٧", "latin"), ("؟", "latin"), ("2 × 3 ÷ 4", "arabic")],
)
def test_script_ratio_ignores_digits_and_symbols_in_script_blocks(text: str, script: str) -> None:
    # None of these texts has a letter, so the documented ratio is 1.0.
    assert not any(ch.isalpha() for ch in text)
    assert script_ratio(text, script) == 1.0


def test_compression_ratio_is_high_for_repetition() -> None:
    assert compression_ratio("ha " * 300) > 10
    assert compression_ratio(ENGLISH_PARAGRAPH) < 3
    assert compression_ratio(ARABIC_PARAGRAPH) < 3
    assert compression_ratio("") == 0.0


# --- check_output ---------------------------------------------------------------------------------


def test_good_translation_passes() -> None:
    assert check_output(SOURCE, _gen(ARABIC), RULES) is None
    assert check_output(ENGLISH_PARAGRAPH, _gen(ARABIC_PARAGRAPH), RULES) is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty_output(text: str) -> None:
    assert check_output(SOURCE, _gen(text), RULES) == "empty_output"
    # Empty wins over every other reason.
    assert check_output(SOURCE, _gen(text, "length"), RULES) == "empty_output"


def test_truncated_output() -> None:
    assert check_output(SOURCE, _gen(ARABIC, "length"), RULES) == "truncated"


def test_truncated_ignored_when_not_rejected() -> None:
    rules = QualityRules(reject_truncated=False)
    assert check_output(SOURCE, _gen(ARABIC, "length"), rules) is None
    # The other checks still apply to a cut-off output.
    assert check_output(SOURCE, _gen(SOURCE, "length"), rules) == "wrong_script"


def test_repetition_on_long_repeated_output() -> None:
    runaway = "اجتمعت اللجنة " * 40
    assert len(runaway) >= RULES.min_length_for_repetition
    assert check_output(SOURCE, _gen(runaway), RULES) == "repetition"


def test_no_repetition_false_positive_on_natural_paragraph() -> None:
    assert len(ARABIC_PARAGRAPH) >= RULES.min_length_for_repetition
    assert check_output(ENGLISH_PARAGRAPH, _gen(ARABIC_PARAGRAPH), RULES) is None
    latin = QualityRules(target_script="latin")
    assert check_output(ARABIC_PARAGRAPH, _gen(ENGLISH_PARAGRAPH), latin) is None


def test_short_repeated_output_is_not_checked_for_repetition() -> None:
    short = "نعم " * 10
    assert len(short.strip()) < RULES.min_length_for_repetition
    assert check_output("yes", _gen(short), RULES) is None


def test_repetitive_source_allows_repetitive_output() -> None:
    # A source that repeats itself may be translated by an output that repeats the same way.
    source = "Row, row, row your boat. " * 20
    output = "جدف، جدف، جدف بقاربك. " * 20
    assert compression_ratio(output) > RULES.max_compression_ratio
    assert check_output(source, _gen(output), RULES) is None


def test_wrong_script() -> None:
    assert check_output(SOURCE, _gen(SOURCE), RULES) == "wrong_script"
    # Mostly Latin with a little Arabic is still the wrong script.
    assert check_output(SOURCE, _gen(SOURCE + " نعم"), RULES) == "wrong_script"
    # Latin target: Arabic output is wrong.
    assert check_output(ARABIC, _gen(ARABIC), QualityRules(target_script="latin")) == "wrong_script"


def test_script_threshold_is_configurable() -> None:
    mixed = "مرحبا بكم hello"  # 8 Arabic letters, 5 Latin letters
    assert check_output(SOURCE, _gen(mixed), QualityRules(min_script_ratio=0.5)) is None
    assert check_output(SOURCE, _gen(mixed), QualityRules(min_script_ratio=0.7)) == "wrong_script"


@pytest.mark.parametrize("text", ["12345", "⟦0⟧ ⟦1⟧", "3.14 + 2.71 = 5.85", "```\n```"])
def test_text_without_letters_passes_script_check(text: str) -> None:
    assert check_output(SOURCE, _gen(text), RULES) is None
    assert check_output(SOURCE, _gen(text), QualityRules(target_script="latin")) is None


def test_arabic_text_with_placeholders_passes() -> None:
    text = "زر الموقع ⟦0⟧ ثم شغل ⟦1⟧ أولا."
    assert check_output("Visit ⟦0⟧ then run ⟦1⟧ first.", _gen(text), RULES) is None
