"""Translation metrics: the one place BLEU, chrF++ and ROUGE-L are computed (corpus level, one reference).

BLEU uses sacrebleu's defaults (13a tokenisation, exponential smoothing); chrF++ is sacrebleu's ``CHRF``
with ``word_order=2`` (character 6-grams plus word bigrams, beta 2). Both return scores on a 0-100 scale,
the same numbers as ``sacrebleu REF -i HYP -m bleu chrf --chrf-word-order 2``.

ROUGE-L is rouge-score's LCS F1 per sentence; the corpus figure is the **mean of the sentence F1s**,
times 100. It is computed two ways:

- ``rouge_l`` (report-compatible): rouge-score's default tokenizer, which lowercases and replaces every
  character outside ``[a-z0-9]`` with a space. Arabic letters vanish, so on Arabic text only digits and
  Latin words are scored; an all-Arabic pair scores 0 even when hypothesis and reference are identical.
- ``rouge_l_arabic`` (Arabic-aware): :class:`ArabicTokenizer`, which applies Unicode NFKC, lowercases,
  removes Arabic diacritics (harakat, tanween, shadda, sukun, superscript alef, Quranic marks) and the
  tatweel, then takes runs of Unicode letters and digits as tokens (so ``_`` and punctuation split).
  Diacritics go first because they are not word characters: left in, they would split words. It does
  not unify alef, ya or ta marbuta spellings: those differences are scored.
"""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hala.errors import HalaError

if TYPE_CHECKING:
    from rouge_score import rouge_scorer

# rouge_score pulls in nltk and scipy (about a second): imported where a score is computed, so the
# stages that only import this module (through hala.quantize) start fast.

CHRF_WORD_ORDER = 2

# Arabic diacritics and marks that do not change the letters of a word, plus the tatweel (U+0640).
ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed\u0640]")
_WORD = re.compile(r"[^\W_]+")


class MetricsInputError(HalaError, ValueError):
    """The files given to ``hala metrics`` cannot be scored; the message names the file and the counts."""


def strip_arabic_marks(text: str) -> str:
    """``text`` without Arabic diacritics and tatweel (the letters themselves are unchanged)."""
    return ARABIC_MARKS.sub("", text)


class ArabicTokenizer:
    """A rouge-score tokenizer that keeps Arabic letters (rouge-score calls ``tokenize``)."""

    def tokenize(self, text: str) -> list[str]:
        """NFKC, lowercase, strip diacritics and tatweel, then Unicode letter/digit runs."""
        text = strip_arabic_marks(unicodedata.normalize("NFKC", text).lower())
        return _WORD.findall(text)


def _checked(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The hypotheses and the single reference stream, as sacrebleu takes them, after checking both."""
    for name, texts in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(texts, str):
            raise TypeError(f"{name} is one string; pass a list with one text per segment")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; "
            "pass exactly one reference per hypothesis, in the same order"
        )
    if not hypotheses:
        raise ValueError("no hypotheses and references to score; pass at least one segment")
    return list(hypotheses), [list(references)]


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) of the hypotheses against one reference each, 13a tokenisation."""
    hyps, refs = _checked(hypotheses, references)
    from sacrebleu.metrics import BLEU

    return float(BLEU().corpus_score(hyps, refs).score)


def chrf_pp(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF++ (0-100): sacrebleu's chrF with word bigrams (``word_order=2``)."""
    hyps, refs = _checked(hypotheses, references)
    from sacrebleu.metrics import CHRF

    return float(CHRF(word_order=CHRF_WORD_ORDER).corpus_score(hyps, refs).score)


def _mean_rouge_l(scorer: rouge_scorer.RougeScorer, hyps: list[str], refs: list[str]) -> float:
    """Mean of the sentence-level ROUGE-L F1s, on a 0-100 scale."""
    total = sum(scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hyps, refs, strict=True))
    return 100.0 * total / len(hyps)


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Report-compatible ROUGE-L (0-100): rouge-score's default tokenizer, which drops Arabic letters."""
    hyps, refs = _checked(hypotheses, references)
    from rouge_score import rouge_scorer

    return _mean_rouge_l(rouge_scorer.RougeScorer(["rougeL"]), hyps, refs[0])


def rouge_l_arabic(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Arabic-aware ROUGE-L (0-100): :class:`ArabicTokenizer`, mean of sentence F1s."""
    hyps, refs = _checked(hypotheses, references)
    from rouge_score import rouge_scorer

    return _mean_rouge_l(rouge_scorer.RougeScorer(["rougeL"], tokenizer=ArabicTokenizer()), hyps, refs[0])


def translation_metrics(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """All four corpus metrics (0-100): ``bleu``, ``chrf`` (chrF++), ``rouge_l``, ``rouge_l_arabic``."""
    return {
        "bleu": bleu(hypotheses, references),
        "chrf": chrf_pp(hypotheses, references),
        "rouge_l": rouge_l(hypotheses, references),
        "rouge_l_arabic": rouge_l_arabic(hypotheses, references),
    }


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file without their line endings (one segment per line)."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsInputError(f"{path}: cannot read it as UTF-8 text: {exc}") from exc


def metrics_main(hyp_path: str | Path, ref_path: str | Path) -> dict[str, float | int]:
    """Score two line-aligned UTF-8 files (hypotheses, references): the four metrics and ``n``."""
    hyps, refs = read_lines(Path(hyp_path)), read_lines(Path(ref_path))
    for path, lines in ((hyp_path, hyps), (ref_path, refs)):
        if not lines:
            raise MetricsInputError(f"{path}: the file is empty; write one segment per line")
    if len(hyps) != len(refs):
        raise MetricsInputError(
            f"{hyp_path} has {len(hyps)} lines but {ref_path} has {len(refs)}; "
            "the files must be line-aligned (one hypothesis per reference, in the same order)"
        )
    return {**translation_metrics(hyps, refs), "n": len(hyps)}


def _cmd_metrics(args: argparse.Namespace) -> int:
    print(json.dumps(metrics_main(args.hyp, args.ref), indent=2, sort_keys=True))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hala metrics --hyp FILE --ref FILE`` (prints the metrics as JSON) to the CLI."""
    p = sub.add_parser(
        "metrics", help="BLEU, chrF++ and both ROUGE-L of line-aligned hypothesis/reference files"
    )
    p.add_argument("--hyp", required=True, help="hypotheses: UTF-8 text, one segment per line")
    p.add_argument("--ref", required=True, help="references: UTF-8 text, line-aligned with --hyp")
    p.set_defaults(func=_cmd_metrics)
