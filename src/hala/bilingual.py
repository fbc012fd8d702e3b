"""The translator's training set: teacher-translated OpenOrca pairs plus judge-accepted OPUS pairs.

Each English-Arabic pair (an OpenOrca question, an OpenOrca response, an accepted OPUS sentence
pair) becomes one chat example per direction of ``translator.directions``: English to Arabic (the
report's, section 2.4: "405K x 2 = 810K" OpenOrca questions and responses + ~440K OPUS pairs = ~1.26M
examples "for E->A"), and optionally Arabic to English. Pairs are deduplicated on whitespace-normalised
text; a pair and all its directions land in the same split (train or held-out, by a stable hash), so
nothing leaks between them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import xxhash

from hala.sources.columnar import MESSAGES_TYPE, stable_hash

EXAMPLE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("pair_id", pa.string()),
        ("direction", pa.string()),
        ("origin", pa.string()),
        ("messages", MESSAGES_TYPE),
    ]
)
_SPACE = re.compile(r"\s+")


@dataclass
class BilingualCounts:
    """Pairs in, pairs dropped by reason, examples out per split."""

    pairs_in: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    train_examples: int = 0
    heldout_examples: int = 0

    def drop(self, reason: str) -> None:
        """Count one dropped pair."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def teacher_pairs(tuples: pa.Table) -> Iterator[tuple[str, str, str]]:
    """``(origin, english, arabic)`` for each OpenOrca question and response."""
    for row in tuples.to_pylist():
        yield "openorca.instr", row["instr_en"], row["instr_ar"]
        yield "openorca.resp", row["resp_en"], row["resp_ar"]


def opus_pairs(accepted: pa.Table) -> Iterator[tuple[str, str, str]]:
    """``(origin, english, arabic)`` for each accepted OPUS record (user = English, assistant = Arabic)."""
    for row in accepted.to_pylist():
        turns = {m["role"]: m["content"] for m in row["messages"]}
        yield "opus100", turns.get("user", ""), turns.get("assistant", "")


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


DIRECTIONS = ("en-ar", "ar-en")


def build_examples(
    pairs: Iterator[tuple[str, str, str]],
    prompt_en_ar: str,
    prompt_ar_en: str | None,
    heldout_fraction: float,
    directions: Sequence[str] = DIRECTIONS,
) -> tuple[pa.Table, pa.Table, BilingualCounts]:
    """Deduplicate pairs and expand each into one chat example per direction; train, held-out, counts."""
    unknown = sorted(set(directions) - set(DIRECTIONS))
    if unknown or not directions:
        raise ValueError(
            f"translator directions must be a non-empty subset of {DIRECTIONS}; got {directions}"
        )
    if "ar-en" in directions and not prompt_ar_en:
        raise ValueError("the ar-en direction needs translator.prompt_ar_en")
    counts = BilingualCounts()
    seen: set[str] = set()
    rows: list[dict[str, object]] = []
    for origin, en, ar in pairs:
        counts.pairs_in += 1
        en_n, ar_n = _normal(en or ""), _normal(ar or "")
        if not en_n or not ar_n:
            counts.drop("empty_side")
            continue
        pair_id = xxhash.xxh3_128_hexdigest(f"{en_n}\x00{ar_n}")
        if pair_id in seen:
            counts.drop("duplicate_pair")
            continue
        seen.add(pair_id)
        for direction, prompt, source, target in (
            ("en-ar", prompt_en_ar, en, ar),
            ("ar-en", prompt_ar_en or "", ar, en),
        ):
            if direction not in directions:
                continue
            messages = [
                {"role": "user", "content": prompt.format(x=source.strip())},
                {"role": "assistant", "content": target.strip()},
            ]
            rows.append(
                {
                    "id": f"{pair_id}:{direction}",
                    "pair_id": pair_id,
                    "direction": direction,
                    "origin": origin,
                    "messages": messages,
                }
            )
    table = pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA)
    bucket = stable_hash(table.column("pair_id")) % np.uint64(10_000)
    heldout = bucket < np.uint64(round(heldout_fraction * 10_000))
    train, held = table.filter(pa.array(~heldout)), table.filter(pa.array(heldout))
    counts.train_examples, counts.heldout_examples = train.num_rows, held.num_rows
    return train, held, counts
