"""The data-preparation stage: read a source, validate, normalise, quarantine, shard, write.

Output folder of one source::

    shards/shard-00000-of-00004.parquet ...   kept records (common record schema), by id hash
    quarantine.parquet                        set-aside rows: id, row, reason, column
    counts.json                               read = kept + sum(quarantined by reason), fingerprint

Every input row ends in exactly one of the shards or the quarantine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hala.errors import HalaError, SourceReadError
from hala.sources import RECORD_SCHEMA, Normalised, SourceSpec
from hala.sources.columnar import stable_hash, stable_shard
from hala.sources.schema import check_columns, decode_json_lists

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


# The datasets builder of each data-file extension; files of one builder can share a split.
BUILDERS = {"parquet": "parquet", "jsonl": "json", "json": "json", "csv": "csv"}
# Files a local copy of a hub dataset carries that are not data: read by no one, refused by no one.
NOT_DATA = frozenset({"readme.md", ".gitattributes", ".gitignore"})


def _is_local(location: str) -> bool:
    """Whether ``location`` names a local path: it exists, or looks like a path and not ``owner/name``."""
    if Path(location).exists():
        return True
    return location.startswith(("/", ".", "~")) or location.count("/") > 1 or "\\" in location


def local_data_files(spec: SourceSpec, location: str) -> tuple[str, list[str]]:
    """The builder and every data file of a local source path, in name order.

    Every file under the folder is read: one that is not a data file of the source, or a mix of
    formats (datasets reads one format per split), is refused by name rather than left out.
    """
    source = f"{spec.key} ({spec.hub_id})"
    path = Path(location).expanduser()
    if not path.exists():
        raise SourceReadError(
            f"{source}: the local path {location} does not exist; pass a folder of the source's data "
            f"files ({'/'.join(spec.extensions)}) or the hub id {spec.hub_id}"
        )
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    files = [p for p in files if p.name.lower() not in NOT_DATA and not _hidden(p, path)]
    extension = {p: p.suffix.lstrip(".").lower() for p in files}
    refused = [p for p in files if extension[p] not in spec.extensions]
    if refused:
        raise SourceReadError(
            f"{source}: {location} holds file(s) that are not {'/'.join(spec.extensions)} data: "
            f"{', '.join(str(p) for p in refused)}; every file of a source folder is read, so move "
            "these out of it"
        )
    builders: dict[str, list[str]] = {}
    for p in files:
        builders.setdefault(BUILDERS[extension[p]], []).append(str(p))
    if len(builders) > 1:
        mixed = "; ".join(f"{b}: {', '.join(Path(f).name for f in fs)}" for b, fs in sorted(builders.items()))
        raise SourceReadError(
            f"{source}: {location} mixes data formats ({mixed}); one split is read in one format, "
            "so convert the files to one format or keep one format per folder"
        )
    if not builders:
        raise SourceReadError(f"{source}: {location} holds no data files ({'/'.join(spec.extensions)})")
    ((builder, data_files),) = builders.items()
    return builder, data_files


def _hidden(path: Path, root: Path) -> bool:
    """Whether a file lies in a hidden folder (``.cache``, ``.git``) or is hidden itself, under ``root``."""
    return any(part.startswith(".") for part in path.relative_to(root).parts) if path != root else False


def read_source(
    spec: SourceSpec, location: str, limit: int | None = None, revision: str | None = None
) -> pa.Table:
    """Read a source's split with ``datasets.load_dataset`` as an Arrow table.

    ``location`` is the hub id on the cluster, or a local folder (or file) of data files (tests,
    ``tiny``), read whole: every data file goes into the split (:func:`local_data_files`).
    ``limit`` keeps the first N rows of the split.
    """
    from datasets import load_dataset  # heavy import, only when reading

    split = spec.split if limit is None else f"{spec.split}[:{limit}]"
    source = f"{spec.key} ({spec.hub_id})"
    builder, data_files = "", list[str]()
    if _is_local(location):
        builder, data_files = local_data_files(spec, location)
        empty = [f for f in data_files if Path(f).stat().st_size == 0]
        if empty:
            raise SourceReadError(
                f"{source}: empty data file(s) {', '.join(empty)}; remove them or fill them"
            )
        args: tuple[str, ...] = (builder,)
        kwargs: dict[str, object] = {"data_files": {spec.split: data_files}}
    else:
        args, kwargs = (location,), {"name": spec.subset, "revision": revision or spec.revision}
    try:
        dataset = load_dataset(*args, split=split, **kwargs)
    except Exception as exc:  # datasets raises many types; all mean "cannot read this source"
        where = _failing_file(builder, data_files) if len(data_files) > 1 else location
        raise SourceReadError(
            f"{source}: cannot read split '{split}' from {where}: {_root_cause(exc)}. Check that the "
            f"files are valid {'/'.join(spec.extensions)} with one type per column (and, for parquet, one "
            "schema across files), or that the hub id, subset and revision exist."
        ) from exc
    table: pa.Table = dataset.with_format("arrow")[:]
    _check_utf8(source, location, table)
    return table


def _failing_file(builder: str, data_files: list[str]) -> str:
    """The first of ``data_files`` that does not read alone, or all of them (a schema clash)."""
    from datasets import load_dataset

    for data_file in data_files:
        try:
            load_dataset(builder, data_files=[data_file], split="train")
        except Exception:  # the file that breaks the split
            return data_file
    return f"{', '.join(data_files)} (each reads alone: their schemas differ)"


def _root_cause(exc: BaseException) -> str:
    """The two innermost causes of a wrapped exception, as ``Type: message`` (datasets wraps the reader's)."""
    seen = [exc]
    while (inner := seen[-1].__cause__ or seen[-1].__context__) is not None and inner not in seen:
        seen.append(inner)
    messages = [f"{type(e).__name__}: {e}" for e in seen if str(e)]
    return "; ".join(messages[-2:]) if messages else type(exc).__name__


def _check_utf8(source: str, location: str, table: pa.Table) -> None:
    """Refuse text that is not valid UTF-8, naming the first row and column that hold it.

    Readers pass undecodable bytes through into Arrow strings, where they fail much later (writing
    or reading a shard). A full validation is one pass; a bad table is bisected to its first bad row.
    """
    if _valid(table):
        return
    lo, hi = 0, table.num_rows
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if not _valid(table.slice(lo, mid - lo)) else (mid, hi)
    row = table.slice(lo, 1)
    columns = [name for name in row.column_names if not _valid(row.select([name]))]
    raise SourceReadError(
        f"{source}: row {lo} of {location} (counting from 0 over its files in name order) holds text that "
        f"is not valid UTF-8 in column(s) {columns}; re-encode the file as UTF-8 or drop the row"
    )


def _valid(table: pa.Table) -> bool:
    try:
        table.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _first_occurrence(ids: pa.Array, hashes: np.ndarray) -> np.ndarray:
    """True for the first row of each id, False for later repeats.

    Candidates come from a 64-bit hash of each id (one sort); every candidate repeat is then
    confirmed by comparing the ids themselves, so a hash collision never drops a row.
    """
    _, first_rows = np.unique(hashes, return_index=True)
    keep = np.zeros(len(ids), dtype=bool)
    keep[first_rows] = True
    repeats = np.flatnonzero(~keep)
    if repeats.size:
        seen = {
            int(hashes[row]): {ids[int(row)].as_py()}
            for row in first_rows[np.isin(hashes[first_rows], hashes[repeats])]
        }
        for row in repeats.tolist():
            same_hash = seen[int(hashes[row])]
            value = ids[row].as_py()
            if value not in same_hash:  # a hash collision, not a repeat: keep it
                keep[row] = True
                same_hash.add(value)
    return keep


def _repeats_of_valid_rows(out: Normalised, hashes: np.ndarray) -> np.ndarray:
    """True for a valid row whose id an earlier *valid* row holds.

    A row already quarantined for its own reason does not claim its id, so a valid row repeating the
    id of a broken one is kept rather than lost with it.
    """
    valid = np.flatnonzero(out.codes == 0)
    repeats = np.zeros(len(out.codes), dtype=bool)
    if valid.size:
        ids = out.ids.take(pa.array(valid))
        repeats[valid[~_first_occurrence(ids, hashes[valid])]] = True
    return repeats


PARALLEL_MIN_ROWS = 100_000


def _normalise_in_parts(spec: SourceSpec, table: pa.Table) -> Normalised:
    """``spec.normalise`` over slices of ``table`` in one thread per core, merged in row order.

    Arrow's kernels release the GIL, so the slices run side by side; the columns stay chunked (no
    copy) and each slice's quarantine codes are renumbered into one label list.
    """
    workers = os.cpu_count() or 1
    if workers == 1 or table.num_rows < PARALLEL_MIN_ROWS or spec.whole_table:
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


def normalise_table(spec: SourceSpec, table: pa.Table) -> Prepared:
    """Check the schema, normalise every row and split kept rows from quarantined ones."""
    source = f"{spec.key} ({spec.hub_id})"
    table = decode_json_lists(source, table, spec.columns)
    check_columns(source, table, spec.columns)
    out = _normalise_in_parts(spec, table)
    hashes = stable_hash(out.ids)
    out.flag(_repeats_of_valid_rows(out, hashes), "duplicate_id", "id")
    n = table.num_rows
    meta = out.meta if out.meta is not None else pa.chunked_array([pa.nulls(n, pa.string())])
    records = pa.Table.from_arrays(
        [out.ids, pa.chunked_array([pa.repeat(pa.scalar(spec.key, pa.string()), n)]), out.messages, meta],
        schema=RECORD_SCHEMA,
    )
    keep = out.codes == 0
    bad = np.flatnonzero(~keep)
    labels = out.labels
    quarantine = pa.Table.from_arrays(
        [
            out.ids.take(pa.array(bad)),
            pa.array(bad, pa.int64()),
            pa.array([labels[c - 1][0] for c in out.codes[bad]], pa.string()),
            pa.array([labels[c - 1][1] for c in out.codes[bad]], pa.string()),
        ],
        schema=QUARANTINE_SCHEMA,
    )
    kept = records if bad.size == 0 else records.filter(pa.array(keep))
    return Prepared(kept=kept, quarantine=quarantine, read=n, kept_hashes=hashes[keep])


def shard_indices(table: pa.Table, num_shards: int, hashes: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices of each shard, by a stable hash of the record id (input order kept within a shard).

    ``hashes`` are the ids' :func:`stable_hash` values when already known.
    """
    if hashes is None:
        shard_of = stable_shard(table.column("id"), num_shards)
    else:
        shard_of = (hashes % np.uint64(num_shards)).astype(np.int64)
    order = np.argsort(shard_of, kind="stable")
    bounds = np.searchsorted(shard_of[order], np.arange(num_shards + 1))
    return [order[bounds[s] : bounds[s + 1]] for s in range(num_shards)]


def shard_table(table: pa.Table, num_shards: int) -> list[pa.Table]:
    """Split records into ``num_shards`` tables by :func:`shard_indices`."""
    return [table.take(pa.array(rows)) for rows in shard_indices(table, num_shards)]


def shard_name(index: int, num_shards: int) -> str:
    """File name of one shard."""
    return f"shard-{index:05d}-of-{num_shards:05d}.parquet"


def _fingerprint(tables: list[pa.Table]) -> str:
    digest = hashlib.sha256()
    for table in tables:
        for column in ("id", "messages", "meta"):
            for chunk in table.column(column).chunks:
                for buffer in chunk.buffers():
                    if buffer is not None:
                        digest.update(buffer)
        digest.update(str(table.num_rows).encode())
    return digest.hexdigest()


def write_shards(
    table: pa.Table, num_shards: int, out_dir: Path, hashes: np.ndarray | None = None
) -> list[pa.Table]:
    """Shard ``table`` and write ``out_dir/shards/shard-XXXXX-of-YYYYY.parquet``; returns the shards.

    Gathering and Parquet encoding release the GIL, so one thread per core builds and writes
    shards side by side.
    """
    shard_dir = out_dir / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    for stale in shard_dir.glob("shard-*.parquet"):  # an earlier run's shards are replaced, never mixed
        stale.unlink()

    batches = table.to_batches()  # take per batch: a take across chunks would concatenate them first
    bounds = np.cumsum([0] + [b.num_rows for b in batches])

    def write(index: int, rows: np.ndarray) -> pa.Table:
        parts = [
            batch.take(pa.array(rows[(rows >= lo) & (rows < hi)] - lo))
            for batch, lo, hi in zip(batches, bounds[:-1], bounds[1:], strict=True)
        ]
        shard = pa.Table.from_batches(parts, schema=table.schema).combine_chunks()
        # Dictionary encoding only pays off on the low-cardinality column.
        pq.write_table(shard, shard_dir / shard_name(index, num_shards), use_dictionary=["source"])
        return shard

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(write, range(num_shards), shard_indices(table, num_shards, hashes)))


def prepare_source(
    spec: SourceSpec,
    location: str,
    out_dir: Path,
    num_shards: int,
    limit: int | None = None,
    revision: str | None = None,
) -> SourceCounts:
    """Read, validate, normalise and shard one source into ``out_dir``; writes ``counts.json``."""
    table = read_source(spec, location, limit=limit, revision=revision)
    prepared = normalise_table(spec, table)
    shards = write_shards(prepared.kept, num_shards, out_dir, prepared.kept_hashes)
    pq.write_table(prepared.quarantine, out_dir / "quarantine.parquet")
    counts = SourceCounts(
        source=spec.key,
        hub_id=spec.hub_id,
        revision=revision or spec.revision,
        location=location,
        read=prepared.read,
        kept=prepared.kept.num_rows,
        quarantined=prepared.quarantined_by_reason(),
        num_shards=num_shards,
        fingerprint=_fingerprint(shards),
    )
    if not counts.balanced():  # an invariant of normalise_table; guard it where it is written
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
    "Prepared",
    "QuarantineLimitError",
    "SourceCounts",
    "check_quarantine",
    "normalise_table",
    "prepare_source",
    "read_records",
    "read_source",
    "shard_table",
    "write_shards",
]
