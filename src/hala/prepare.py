"""The data-preparation stage: read a source, validate, normalise, quarantine, shard, write.

Output folder of one source::

    shards/shard-00000-of-00004.parquet ...   kept records (common record schema), by id hash
    quarantine.parquet                        set-aside rows: id, row, reason, column
    counts.json                               read = kept + sum(quarantined by reason), fingerprint

Every input row ends in exactly one of the shards or the quarantine.

The split is streamed: read record batch by record batch (:class:`SourceReader`), each batch
checked and normalised in a thread per core, then, in order, the duplicate-id rule (against every
earlier batch), the shard files and the quarantine are appended to with Parquet writers. Memory is
bounded by a few batches (and 16 bytes per kept id), not by the source, and the output does not
depend on the batch size: the same rows, in the same order, in the same shard files.
"""

from __future__ import annotations

import json
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hala.errors import HalaError, SourceReadError
from hala.sources import RECORD_SCHEMA, Normalised, SourceSpec
from hala.sources.columnar import stable_hash, stable_hash_pair
from hala.sources.dedup import ClaimedIds
from hala.sources.reader import (
    BATCH_BYTES,
    BATCH_ROWS,
    BUILDERS,
    NOT_DATA,
    Batch,
    SourceReader,
    local_data_files,
)
from hala.sources.schema import check_columns, decode_json_lists
from hala.sources.shards import ShardWriter, shard_indices, shard_name

QUARANTINE_SCHEMA = pa.schema(
    [("id", pa.string()), ("row", pa.int64()), ("reason", pa.string()), ("column", pa.string())]
)


@dataclass
class SourceCounts:
    """What happened to every row of one source."""

    source: str
    hub_id: str
    revision: str
    location: str
    read: int
    kept: int
    quarantined: dict[str, int] = field(default_factory=dict)
    num_shards: int = 0
    fingerprint: str = ""

    def balanced(self) -> bool:
        """Whether every row read is accounted for."""
        return self.read == self.kept + sum(self.quarantined.values())


@dataclass
class Prepared:
    """The normalised records of one source, split into kept rows and quarantined rows."""

    kept: pa.Table
    quarantine: pa.Table
    read: int
    kept_hashes: np.ndarray  # stable_hash of each kept id (computed once, reused for sharding)

    def quarantined_by_reason(self) -> dict[str, int]:
        """Counts of quarantined rows per reason, sorted by reason."""
        return count_reasons(self.quarantine)


def count_reasons(quarantine: pa.Table) -> dict[str, int]:
    """Rows of a quarantine table per ``reason``, sorted by reason."""
    return dict(sorted(Counter(quarantine.column("reason").to_pylist()).items()))


def read_source(
    spec: SourceSpec, location: str, limit: int | None = None, revision: str | None = None
) -> pa.Table:
    """A source's split (its first ``limit`` rows when given) as one Arrow table.

    For small splits and tools (evaluation sets, ``hala eval translation``); the prepare stage
    streams the split instead (:class:`SourceReader`).
    """
    return SourceReader(spec, location, limit=limit, revision=revision).read_all()


@dataclass
class NormalisedBatch:
    """One batch of a source, normalised: a record per input row and the quarantine code of each.

    ``hashes`` are the :func:`stable_hash_pair` keys of the ids of the valid rows (code 0).
    """

    start: int
    records: pa.Table
    codes: np.ndarray
    labels: list[tuple[str, str]]
    hashes: tuple[np.ndarray, np.ndarray]


PARALLEL_MIN_ROWS = 100_000


def _normalise_in_parts(spec: SourceSpec, table: pa.Table, workers: int) -> Normalised:
    """``spec.normalise`` over slices of ``table`` in ``workers`` threads, merged in row order.

    Arrow's kernels release the GIL, so the slices run side by side; the columns stay chunked (no
    copy) and each slice's quarantine codes are renumbered into one label list.
    """
    if workers <= 1 or table.num_rows < PARALLEL_MIN_ROWS or spec.whole_table:
        return spec.normalise(table)
    step = -(-table.num_rows // workers)
    slices = [table.slice(start, step) for start in range(0, table.num_rows, step)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(spec.normalise, slices))
    metas = [p.meta for p in parts]
    merged = Normalised(
        ids=pa.chunked_array([p.ids for p in parts]),
        messages=pa.chunked_array([p.messages for p in parts]),
        meta=None if any(m is None for m in metas) else pa.chunked_array(metas),
    )
    for part, offset in zip(parts, range(0, table.num_rows, step), strict=True):
        for code, (reason, column) in enumerate(part.labels, start=1):
            mask = np.zeros(table.num_rows, dtype=bool)
            mask[offset : offset + len(part.codes)] = part.codes == code
            merged.flag(mask, reason, column)
    return merged


def normalise_batch(
    spec: SourceSpec,
    table: pa.Table,
    start: int = 0,
    rows: Callable[[], Iterable[pa.Table]] | None = None,
    workers: int = 1,
) -> NormalisedBatch:
    """Check one batch's columns and normalise its rows (rows ``start`` .. of the source).

    ``rows`` gives the source's batches again when a column's type is wrong, to name the row that
    breaks it; ``workers`` threads normalise slices of a large batch side by side.
    """
    source = f"{spec.key} ({spec.hub_id})"
    table = decode_json_lists(source, table, spec.columns)
    check_columns(source, table, spec.columns, rows)
    out = _normalise_in_parts(spec, table, workers)
    n = table.num_rows
    meta = out.meta if out.meta is not None else pa.chunked_array([pa.nulls(n, pa.string())])
    records = pa.Table.from_arrays(
        [out.ids, pa.chunked_array([pa.repeat(pa.scalar(spec.key, pa.string()), n)]), out.messages, meta],
        schema=RECORD_SCHEMA,
    )
    valid = pa.array(np.flatnonzero(out.codes == 0))
    hashes = stable_hash_pair(records.column("id").take(valid))
    return NormalisedBatch(start, records, out.codes, out.labels, hashes)


@dataclass
class SplitBatch:
    """A normalised batch split into kept records (with their id hashes) and quarantined rows."""

    kept: pa.Table
    kept_hashes: np.ndarray
    quarantine: pa.Table


def split_batch(batch: NormalisedBatch, claimed: ClaimedIds) -> SplitBatch:
    """Apply the duplicate-id rule (against every earlier batch too), then split kept from quarantined.

    A row already quarantined for its own reason does not claim its id, so a valid row repeating
    the id of a broken one is kept rather than lost with it.
    """
    codes, labels = batch.codes.copy(), list(batch.labels)
    valid = np.flatnonzero(codes == 0)
    ids = batch.records.column("id")
    repeat = claimed.claim(ids.take(pa.array(valid)), *batch.hashes)
    if repeat.any():
        if ("duplicate_id", "id") not in labels:
            labels.append(("duplicate_id", "id"))
        codes[valid[repeat]] = labels.index(("duplicate_id", "id")) + 1
    keep = codes == 0
    bad = np.flatnonzero(~keep)
    quarantine = pa.Table.from_arrays(
        [
            ids.take(pa.array(bad)),
            pa.array(bad + batch.start, pa.int64()),
            pa.array([labels[c - 1][0] for c in codes[bad]], pa.string()),
            pa.array([labels[c - 1][1] for c in codes[bad]], pa.string()),
        ],
        schema=QUARANTINE_SCHEMA,
    )
    kept = batch.records if bad.size == 0 else batch.records.filter(pa.array(keep))
    return SplitBatch(kept, batch.hashes[0][~repeat], quarantine)


def normalise_table(spec: SourceSpec, table: pa.Table) -> Prepared:
    """Check the schema, normalise every row of a whole table and split kept rows from quarantined ones."""
    batch = normalise_batch(spec, table, workers=os.cpu_count() or 1)
    split = split_batch(batch, ClaimedIds())
    return Prepared(split.kept, split.quarantine, table.num_rows, split.kept_hashes)


def write_shards(table: pa.Table, num_shards: int, out_dir: Path, hashes: np.ndarray | None = None) -> str:
    """Shard a table of records into ``out_dir/shards/``; returns the shards' fingerprint.

    ``hashes`` are the ids' :func:`stable_hash` values when already known.
    """
    writer = ShardWriter(out_dir, num_shards)
    writer.write(table, stable_hash(table.column("id")) if hashes is None else hashes)
    return writer.close()


def shard_table(table: pa.Table, num_shards: int) -> list[pa.Table]:
    """Split records into ``num_shards`` tables by :func:`shard_indices`."""
    return [table.take(pa.array(rows)) for rows in shard_indices(table, num_shards)]


def _in_order(
    work: Callable[[Batch], NormalisedBatch], batches: Iterable[Batch], workers: int
) -> Iterator[NormalisedBatch]:
    """``work`` over ``batches`` in ``workers`` threads, results in input order, at most ``workers`` ahead."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[NormalisedBatch]] = deque()
        try:
            for batch in batches:
                pending.append(pool.submit(work, batch))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


@dataclass
class StreamCounts:
    """What streaming a source wrote: rows read and kept, quarantined per reason, shard fingerprint."""

    read: int
    kept: int
    quarantined: dict[str, int]
    fingerprint: str


def prepare_batches(
    spec: SourceSpec,
    batches: Iterable[Batch],
    out_dir: Path,
    num_shards: int,
    rows: Callable[[], Iterable[pa.Table]] | None = None,
    check: Callable[[Batch], None] | None = None,
    workers: int | None = None,
) -> StreamCounts:
    """Normalise, quarantine and shard a source batch by batch into ``out_dir``.

    Batches are checked (``check``, e.g. UTF-8) and normalised in ``workers`` threads (one per core),
    then taken in order: the duplicate-id rule runs against every earlier batch, kept records go
    to their shard files and quarantined rows to ``quarantine.parquet``. Memory holds a few batches
    and 16 bytes per kept id. On an error the partial shard and quarantine files are removed.
    """
    workers = workers or os.cpu_count() or 1

    def work(batch: Batch) -> NormalisedBatch:
        if check is not None:
            check(batch)
        return normalise_batch(spec, batch.table, batch.start, rows)

    out_dir.mkdir(parents=True, exist_ok=True)
    shards = ShardWriter(out_dir, num_shards)
    quarantine_path = out_dir / "quarantine.parquet"
    quarantine = pq.ParquetWriter(quarantine_path, QUARANTINE_SCHEMA)
    claimed, reasons, read = ClaimedIds(), Counter[str](), 0
    try:
        for batch in _in_order(work, batches, workers):
            split = split_batch(batch, claimed)
            shards.write(split.kept, split.kept_hashes)
            if split.quarantine.num_rows:
                quarantine.write_table(split.quarantine)
            reasons.update(split.quarantine.column("reason").to_pylist())
            read += batch.records.num_rows
    except BaseException:
        shards.abort()
        quarantine.close()
        quarantine_path.unlink(missing_ok=True)
        raise
    quarantine.close()
    fingerprint = shards.close()
    return StreamCounts(read, shards.rows, dict(sorted(reasons.items())), fingerprint)


def prepare_source(
    spec: SourceSpec,
    location: str,
    out_dir: Path,
    num_shards: int,
    limit: int | None = None,
    revision: str | None = None,
    batch_rows: int = BATCH_ROWS,
    batch_bytes: int = BATCH_BYTES,
) -> SourceCounts:
    """Read, validate, normalise and shard one source into ``out_dir`` batch by batch; writes ``counts.json``.

    ``batch_rows`` / ``batch_bytes`` bound a batch (the output does not depend on them). A source
    whose normaliser reads row positions (``whole_table``: MMLU, MMMLU, evaluation sets of a few
    thousand rows) is normalised as one batch.
    """
    reader = SourceReader(spec, location, limit, revision, batch_rows=batch_rows, batch_bytes=batch_bytes)
    batches: Iterable[Batch] = reader
    if spec.whole_table:
        batches = [Batch(0, reader.read_all())]
    found = prepare_batches(
        spec, batches, out_dir, num_shards, rows=lambda: (b.table for b in reader), check=reader.check_utf8
    )
    counts = SourceCounts(
        source=spec.key,
        hub_id=spec.hub_id,
        revision=revision or spec.revision,
        location=location,
        read=found.read,
        kept=found.kept,
        quarantined=found.quarantined,
        num_shards=num_shards,
        fingerprint=found.fingerprint,
    )
    if not counts.balanced():  # an invariant of split_batch; guard it where it is written
        raise AssertionError(f"{spec.key}: counts do not add up: {counts}")
    (out_dir / "counts.json").write_text(json.dumps(asdict(counts), indent=2, sort_keys=True) + "\n")
    return counts


class QuarantineLimitError(HalaError):
    """A stage set aside more of its rows than its preset allows."""


def check_quarantine(
    what: str,
    read: int,
    quarantine: pa.Table,
    max_fraction: float,
    exempt: frozenset[str] = frozenset(),
    examples: int = 5,
) -> None:
    """Stop when more than ``max_fraction`` of ``read`` rows were quarantined for reasons not ``exempt``.

    ``exempt`` names the reasons that are the recipe's own selections, not lost data. The error gives
    the fraction, the top reasons with their counts and a few example ids, and what to do.
    """
    reasons = {r: n for r, n in count_reasons(quarantine).items() if r not in exempt}
    lost = sum(reasons.values())
    if read == 0 or lost / read <= max_fraction:
        return
    top = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:3]
    rows = quarantine.filter(pa.array([r not in exempt for r in quarantine.column("reason").to_pylist()]))
    ids = rows.column("id").slice(0, examples).to_pylist()
    raise QuarantineLimitError(
        f"{what}: {lost} of {read} rows quarantined ({lost / read:.1%}), more than the allowed "
        f"{max_fraction:.1%}; top reasons: {', '.join(f'{r} {n}' for r, n in top)}; example ids: "
        f"{', '.join(map(str, ids))}. Inspect the quarantine file; fix the source or the settings, or "
        "raise max_quarantine_fraction in the preset if this loss is expected."
    )


def read_records(folder: Path) -> pa.Table:
    """All records of a prepared source folder (its shards, in shard order)."""
    paths = sorted((folder / "shards").glob("shard-*.parquet"))
    if not paths:
        raise SourceReadError(f"{folder}: no shards; is it the output of the prepare stage?")
    return pa.concat_tables([pq.read_table(p) for p in paths])


__all__ = [
    "BUILDERS",
    "NOT_DATA",
    "Batch",
    "NormalisedBatch",
    "Prepared",
    "QuarantineLimitError",
    "SourceCounts",
    "check_quarantine",
    "local_data_files",
    "normalise_batch",
    "normalise_table",
    "prepare_batches",
    "prepare_source",
    "read_records",
    "read_source",
    "shard_indices",
    "shard_name",
    "shard_table",
    "split_batch",
    "write_shards",
]
