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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from hala.sources.columnar import MESSAGES_TYPE, stable_hash
from hala.translate.resume import OUTPUT

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


# Rows read from a shard file at a time: its row groups are read piece by piece, never whole.
READ_ROWS = 8_192
TEACHER_COLUMNS = ["instr_en", "instr_ar", "resp_en", "resp_ar"]


def shard_tables(
    dirs: Sequence[str | Path], columns: Sequence[str], batch_rows: int = READ_ROWS
) -> Iterator[pa.Table]:
    """The ``output.parquet`` of each shard folder in order, ``batch_rows`` rows at a time."""
    for folder in dirs:
        with pq.ParquetFile(Path(folder) / OUTPUT) as handle:
            for batch in handle.iter_batches(batch_size=batch_rows, columns=list(columns)):
                yield pa.Table.from_batches([batch])


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


DIRECTIONS = ("en-ar", "ar-en")


class ExampleBuilder:
    """Deduplicates pairs (whole set, in order) and expands each kept pair into one example per direction."""

    def __init__(
        self,
        prompt_en_ar: str,
        prompt_ar_en: str | None,
        heldout_fraction: float,
        directions: Sequence[str] = DIRECTIONS,
    ) -> None:
        unknown = sorted(set(directions) - set(DIRECTIONS))
        if unknown or not directions:
            raise ValueError(
                f"translator directions must be a non-empty subset of {DIRECTIONS}; got {directions}"
            )
        if "ar-en" in directions and not prompt_ar_en:
            raise ValueError("the ar-en direction needs translator.prompt_ar_en")
        self.prompts = {"en-ar": prompt_en_ar, "ar-en": prompt_ar_en or ""}
        self.directions = [d for d in DIRECTIONS if d in directions]
        self.heldout_fraction = heldout_fraction
        self.counts = BilingualCounts()
        self._seen: set[int] = set()  # 128-bit pair ids as integers: smaller than their hex text

    def add(self, origin: str, en: str | None, ar: str | None) -> list[dict[str, object]]:
        """The examples of one pair: none when it is empty on a side or was seen before."""
        self.counts.pairs_in += 1
        en_n, ar_n = _normal(en or ""), _normal(ar or "")
        if not en_n or not ar_n:
            self.counts.drop("empty_side")
            return []
        key = xxhash.xxh3_128_intdigest(f"{en_n}\x00{ar_n}")
        if key in self._seen:
            self.counts.drop("duplicate_pair")
            return []
        self._seen.add(key)
        pair_id = f"{key:032x}"  # == xxh3_128_hexdigest of the same text
        sides = {
            "en-ar": ((en or "").strip(), (ar or "").strip()),
            "ar-en": ((ar or "").strip(), (en or "").strip()),
        }
        return [
            {
                "id": f"{pair_id}:{direction}",
                "pair_id": pair_id,
                "direction": direction,
                "origin": origin,
                "messages": [
                    {"role": "user", "content": self.prompts[direction].format(x=sides[direction][0])},
                    {"role": "assistant", "content": sides[direction][1]},
                ],
            }
            for direction in self.directions
        ]

    def split(self, rows: list[dict[str, object]]) -> tuple[pa.Table, pa.Table]:
        """Examples as (train, held-out) tables, by a stable hash of their pair id; counted."""
        table = pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA)
        bucket = stable_hash(table.column("pair_id")) % np.uint64(10_000)
        heldout = bucket < np.uint64(round(self.heldout_fraction * 10_000))
        train, held = table.filter(pa.array(~heldout)), table.filter(pa.array(heldout))
        self.counts.train_examples += train.num_rows
        self.counts.heldout_examples += held.num_rows
        return train, held


def build_examples(
    pairs: Iterator[tuple[str, str, str]],
    prompt_en_ar: str,
    prompt_ar_en: str | None,
    heldout_fraction: float,
    directions: Sequence[str] = DIRECTIONS,
) -> tuple[pa.Table, pa.Table, BilingualCounts]:
    """Deduplicate pairs and expand each into one chat example per direction; train, held-out, counts."""
    builder = ExampleBuilder(prompt_en_ar, prompt_ar_en, heldout_fraction, directions)
    rows = [example for origin, en, ar in pairs for example in builder.add(origin, en, ar)]
    train, held = builder.split(rows)
    return train, held, builder.counts


# Examples gathered before they are split and appended to the output files.
WRITE_ROWS = 16_384


def write_examples(
    pairs: Iterable[tuple[str, str, str]],
    builder: ExampleBuilder,
    out_dir: Path,
    batch_rows: int = WRITE_ROWS,
) -> BilingualCounts:
    """Stream pairs into ``out_dir/train.parquet`` and ``out_dir/heldout.parquet`` through ``builder``.

    The files hold exactly the rows :func:`build_examples` gives, in the same order; memory holds
    ``batch_rows`` examples and the pair ids seen.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    with (
        pq.ParquetWriter(out_dir / "train.parquet", EXAMPLE_SCHEMA) as train,
        pq.ParquetWriter(out_dir / "heldout.parquet", EXAMPLE_SCHEMA) as held,
    ):
        for origin, en, ar in pairs:
            rows += builder.add(origin, en, ar)
            if len(rows) >= batch_rows:
                _append(builder, rows, train, held)
                rows = []
        if rows:
            _append(builder, rows, train, held)
    return builder.counts


def _append(
    builder: ExampleBuilder, rows: list[dict[str, object]], train: pq.ParquetWriter, held: pq.ParquetWriter
) -> None:
    train_part, held_part = builder.split(rows)
    if train_part.num_rows:
        train.write_table(train_part)
    if held_part.num_rows:
        held.write_table(held_part)


@dataclass
class BilingualSet:
    """What :func:`build_bilingual_set` wrote: its counts and the rows it read from each side."""

    counts: BilingualCounts
    teacher_rows: int
    opus_accepted: int


def build_bilingual_set(
    teacher_dirs: Sequence[str | Path],
    judged_dirs: Sequence[str | Path],
    out_dir: Path,
    prompt_en_ar: str,
    prompt_ar_en: str | None,
    heldout_fraction: float,
    directions: Sequence[str] = DIRECTIONS,
) -> BilingualSet:
    """The translator's training set from the teacher's and the judge's shard folders, streamed.

    Reads each folder's ``output.parquet`` (teacher tuples, then accepted OPUS records, folders in
    the order given) a few thousand rows at a time and writes ``train.parquet`` and
    ``heldout.parquet`` into ``out_dir``; nothing is concatenated in memory.
    """
    builder = ExampleBuilder(prompt_en_ar, prompt_ar_en, heldout_fraction, directions)
    teacher_rows = sum(pq.read_metadata(Path(d) / OUTPUT).num_rows for d in teacher_dirs)
    opus_accepted = sum(pq.read_metadata(Path(d) / OUTPUT).num_rows for d in judged_dirs)
    pairs = chain(
        (p for table in shard_tables(teacher_dirs, TEACHER_COLUMNS) for p in teacher_pairs(table)),
        (p for table in shard_tables(judged_dirs, ["messages"]) for p in opus_pairs(table)),
    )
    counts = write_examples(pairs, builder, Path(out_dir))
    return BilingualSet(counts, teacher_rows, opus_accepted)
