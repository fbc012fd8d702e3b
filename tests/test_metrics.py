"""hala.metrics against sacrebleu's own command-line tool, ROUGE-L by hand, and the `hala metrics` command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hala.metrics import (
    ArabicTokenizer,
    MetricsInputError,
    bleu,
    chrf_pp,
    metrics_main,
    register,
    rouge_l,
    rouge_l_arabic,
    translation_metrics,
)

SACREBLEU = Path(sys.executable).parent / "sacrebleu"

ARABIC_REFS = [
    "ذهب الولد إلى المدرسة صباحاً.",
    "القطة تجلس على السجادة الحمراء.",
    "الجو جميل اليوم، فلنخرج إلى الحديقة!",
    "قرأتُ 3 كتب في شهر مايو.",
]
ARABIC_HYPS = [
    "ذهب الطفل إلى المدرسة في الصباح.",
    "القطة على السجادة الحمراء.",
    "الطقس جميل اليوم، لنذهب إلى الحديقة!",
    "قرأت ثلاثة كتب في شهر مايو.",
]
ENGLISH_REFS = ["The cat sat on the mat.", "It's 5 o'clock, isn't it?", "Prices rose by 3.5% in May."]
ENGLISH_HYPS = ["The cat is sitting on the mat.", "It is 5 o'clock, right?", "Prices rose 3.5% in May."]


def _cli_scores(hypotheses: list[str], references: list[str], tmp_path: Path) -> dict[str, float]:
    """BLEU and chrF++ as sacrebleu's CLI prints them (JSON, 6 decimals)."""
    ref_file, hyp_file = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref_file.write_text("\n".join(references) + "\n", encoding="utf-8")
    hyp_file.write_text("\n".join(hypotheses) + "\n", encoding="utf-8")
    args = ["-m", "bleu", "chrf", "--chrf-word-order", "2", "--format", "json", "-w", "6"]
    out = subprocess.run(
        [str(SACREBLEU), str(ref_file), "-i", str(hyp_file), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    results = json.loads(out.stdout)
    by_name = {r["name"]: r for r in results}
    assert by_name["BLEU"]["tok"] == "13a"
    assert by_name["chrF2++"]["nw"] == "2"
    return {"bleu": float(by_name["BLEU"]["score"]), "chrf": float(by_name["chrF2++"]["score"])}


@pytest.mark.parametrize(
    ("hypotheses", "references"), [(ARABIC_HYPS, ARABIC_REFS), (ENGLISH_HYPS, ENGLISH_REFS)], ids=["ar", "en"]
)
def test_library_matches_sacrebleu_cli(hypotheses: list[str], references: list[str], tmp_path: Path) -> None:
    cli = _cli_scores(hypotheses, references, tmp_path)
    assert bleu(hypotheses, references) == pytest.approx(cli["bleu"], abs=1e-5)
    assert chrf_pp(hypotheses, references) == pytest.approx(cli["chrf"], abs=1e-5)
    assert 0 < cli["bleu"] < 100 and 0 < cli["chrf"] < 100  # a real, partial match


def test_perfect_match_scores_100() -> None:
    assert bleu(ARABIC_REFS, ARABIC_REFS) == pytest.approx(100.0)
    assert chrf_pp(ARABIC_REFS, ARABIC_REFS) == pytest.approx(100.0)


def test_chrf_pp_counts_word_bigrams() -> None:
    from sacrebleu.metrics import CHRF

    plain_chrf = CHRF().corpus_score(ARABIC_HYPS, [ARABIC_REFS]).score
    assert chrf_pp(ARABIC_HYPS, ARABIC_REFS) != pytest.approx(plain_chrf)


@pytest.mark.parametrize("metric", [bleu, chrf_pp])
def test_length_mismatch_and_empty_input_are_rejected(
    metric: Callable[[Sequence[str], Sequence[str]], float],
) -> None:
    with pytest.raises(ValueError, match="4 hypotheses but 3 references"):
        metric(ARABIC_HYPS, ARABIC_REFS[:3])
    with pytest.raises(ValueError, match="at least one segment"):
        metric([], [])
    with pytest.raises(TypeError, match="one string"):
        metric("النص", "النص")


# --- ROUGE-L, translation_metrics and the `hala metrics` command -------------------------------------


def test_arabic_tokenizer_keeps_letters_and_strips_marks() -> None:
    tokens = ArabicTokenizer().tokenize("أيٌّ من العظامِ التالـــية؟ (S_4)")
    assert tokens == ["أي", "من", "العظام", "التالية", "s", "4"]


def test_arabic_rouge_l_matches_a_hand_computed_lcs() -> None:
    # ref tokens:  ذهب الولد إلى المدرسة صباحا            (5; the tanween of صباحاً is stripped)
    # hyp tokens:  ذهب الطفل إلى المدرسة في الصباح         (6)
    # LCS = ذهب إلى المدرسة = 3 -> P = 3/6, R = 3/5, F1 = 2PR / (P + R) = 6/11
    hyp, ref = ["ذهب الطفل إلى المدرسة في الصباح."], ["ذهب الولد إلى المدرسة صباحاً."]
    assert rouge_l_arabic(hyp, ref) == pytest.approx(100 * 6 / 11)
    # corpus figure = mean of sentence F1s: add an exact match (F1 = 1)
    assert rouge_l_arabic([*hyp, "القطة على السجادة"], [*ref, "القطة على السجادة"]) == pytest.approx(
        100 * (6 / 11 + 1) / 2
    )


def test_diacritics_and_tatweel_do_not_change_arabic_rouge_l() -> None:
    assert rouge_l_arabic(["ذَهَبَ الوَلَدُ إلى المـدرسة"], ["ذهب الولد إلى المدرسة"]) == pytest.approx(100.0)


def test_report_compatible_rouge_l_collapses_on_arabic() -> None:
    # rouge-score's default tokenizer keeps only [a-z0-9]: Arabic words are not tokens at all,
    assert rouge_l(ARABIC_REFS[:3], ARABIC_REFS[:3]) == 0.0  # so identical Arabic scores 0,
    # where digits survive only they are compared: a wrong sentence with the right digit is perfect
    assert rouge_l(["ذهبت 3 قطط إلى السوق"], ["قرأتُ 3 كتب في شهر مايو."]) == pytest.approx(100.0)
    assert rouge_l_arabic(["ذهبت 3 قطط إلى السوق"], ["قرأتُ 3 كتب في شهر مايو."]) < 30.0
    # on English the two tokenizers agree
    assert rouge_l(ENGLISH_HYPS, ENGLISH_REFS) == pytest.approx(rouge_l_arabic(ENGLISH_HYPS, ENGLISH_REFS))


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_metrics_main_equals_sacrebleu_cli_and_library(tmp_path: Path) -> None:
    cli = _cli_scores(ARABIC_HYPS, ARABIC_REFS, tmp_path)
    hyp = _write(tmp_path / "h.txt", ARABIC_HYPS)
    ref = _write(tmp_path / "r.txt", ARABIC_REFS)
    result = metrics_main(hyp, ref)
    assert result["n"] == 4
    assert result["bleu"] == pytest.approx(cli["bleu"], abs=1e-5)
    assert result["chrf"] == pytest.approx(cli["chrf"], abs=1e-5)
    assert {k: v for k, v in result.items() if k != "n"} == translation_metrics(ARABIC_HYPS, ARABIC_REFS)
    assert result["rouge_l"] == 0.0 < result["rouge_l_arabic"] < 100.0


def test_metrics_main_names_the_files_on_bad_input(tmp_path: Path) -> None:
    hyp = _write(tmp_path / "h.txt", ARABIC_HYPS)
    short = _write(tmp_path / "r.txt", ARABIC_REFS[:3])
    with pytest.raises(MetricsInputError, match=r"h\.txt has 4 lines but .*r\.txt has 3"):
        metrics_main(hyp, short)
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(MetricsInputError, match=r"empty\.txt: the file is empty"):
        metrics_main(hyp, empty)
    with pytest.raises(MetricsInputError, match=r"missing\.txt: cannot read"):
        metrics_main(tmp_path / "missing.txt", hyp)


def test_metrics_subcommand_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="hala")
    register(parser.add_subparsers(dest="command", required=True))
    hyp = _write(tmp_path / "h.txt", ENGLISH_HYPS)
    ref = _write(tmp_path / "r.txt", ENGLISH_REFS)
    args = parser.parse_args(["metrics", "--hyp", str(hyp), "--ref", str(ref)])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == pytest.approx(metrics_main(hyp, ref))
    assert set(printed) == {"bleu", "chrf", "rouge_l", "rouge_l_arabic", "n"}
