"""hala.metrics against sacrebleu's own command-line tool, on Arabic and English samples."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hala.metrics import bleu, chrf_pp

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
