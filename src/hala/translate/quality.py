"""Checks on a model's translation: empty, runaway repetition, wrong script, cut off at the limit.

Each check returns a reason (a short, stable name counted in MLflow) or None when the output passes.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from hala.translate.engines import Generation

ARABIC_LETTER = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]")
LATIN_LETTER = re.compile(r"[A-Za-z\u00C0-\u024F]")


@dataclass(frozen=True)
class QualityRules:
    """Thresholds of the output checks (per preset; ``tiny`` relaxes them for random models)."""

    target_script: str = "arabic"  # "arabic" or "latin"
    min_script_ratio: float = 0.5
    max_compression_ratio: float = 4.0
    min_length_for_repetition: int = 200
    reject_truncated: bool = True


def script_ratio(text: str, script: str) -> float:
    """Share of letters that are in ``script`` (1.0 for text without letters)."""
    # The Unicode blocks also hold digits and punctuation (Arabic-Indic digits, "،", "×"): count letters only.
    arabic = sum(1 for ch in ARABIC_LETTER.findall(text) if ch.isalpha())
    latin = sum(1 for ch in LATIN_LETTER.findall(text) if ch.isalpha())
    letters = arabic + latin
    if letters == 0:
        return 1.0
    return (arabic if script == "arabic" else latin) / letters


def compression_ratio(text: str) -> float:
    """Raw bytes over zlib-compressed bytes: high for text that repeats itself."""
    raw = text.encode()
    return len(raw) / max(1, len(zlib.compress(raw)))


def check_output(source: str, generation: Generation, rules: QualityRules) -> str | None:
    """The first problem with a translation of ``source``, or None when it passes."""
    text = generation.text.strip()
    if not text:
        return "empty_output"
    if rules.reject_truncated and generation.finish_reason == "length":
        return "truncated"
    long_enough = len(text) >= rules.min_length_for_repetition
    if long_enough and compression_ratio(text) > max(
        rules.max_compression_ratio, 1.5 * compression_ratio(source)
    ):
        return "repetition"
    if script_ratio(text, rules.target_script) < rules.min_script_ratio:
        return "wrong_script"
    return None
