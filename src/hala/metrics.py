"""Translation metrics: the one place BLEU and chrF++ are computed (sacrebleu, corpus level, one reference).

BLEU uses sacrebleu's defaults (13a tokenisation, exponential smoothing); chrF++ is sacrebleu's ``CHRF``
with ``word_order=2`` (character 6-grams plus word bigrams, beta 2). Both return scores on a 0-100 scale,
the same numbers as ``sacrebleu REF -i HYP -m bleu chrf --chrf-word-order 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF

CHRF_WORD_ORDER = 2


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
    return float(BLEU().corpus_score(hyps, refs).score)


def chrf_pp(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF++ (0-100): sacrebleu's chrF with word bigrams (``word_order=2``)."""
    hyps, refs = _checked(hypotheses, references)
    return float(CHRF(word_order=CHRF_WORD_ORDER).corpus_score(hyps, refs).score)
