"""Reading a source's split record batch by record batch, never whole.

``datasets.load_dataset`` reads the split as it always did (a hub id on the cluster, a local folder
of data files in tests and ``tiny``): it writes the split into its Arrow cache files. Those files
are then read one record batch at a time with plain reads, not through the memory map, so the pages
read are not held by the process: memory is bounded by the batch, not the split. A ``limit`` stops
reading after the first N rows.

A local folder is never answered from a cache built for other content. ``datasets`` keys a local
file's cache on its path, size and mtime, so a file rewritten at the same size with its mtime put
back (``cp -p``, ``rsync -t``, ``touch -r``) used to read as its old rows. The local split's config
name is therefore ``hala-<xxh3-128 of every file's name, size and bytes>``, which is part of
datasets' cache folder: other bytes, another cache. Chosen over a temporary cache per read because
an unchanged folder still reads from the cache it built (a rerun, ``bench/data_prep.py``'s cache
pass then stage) at the cost of one hash pass over the files (xxh3 reads 1 GB in about a second on 2
cores; local folders are tests, ``tiny`` and the bench, never the paper's hub sources). A file that
changes between the hash and the end of the build (its inode, size, mtime or ctime differ
afterwards) would leave a cache under the old hash: that cache is removed and the read refused. A
hub id keeps datasets' own cache (keyed by revision).

Errors name the source and the location: a local path that does not exist, a folder without data
files or mixing formats, an empty data file, a hidden data file (refused, never skipped), a file the
reader refuses (the failing file and the reader's own message), text that is not valid UTF-8 (its
file, its row in that file and in the split, its column).
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import xxhash

from hala.errors import SourceReadError
from hala.sources.base import SourceSpec

# The datasets builder of each data-file extension; files of one builder can share a split.
BUILDERS = {"parquet": "parquet", "jsonl": "json", "json": "json", "csv": "csv"}
# Files a local copy of a hub dataset carries that are not data: read by no one, refused by no one.
NOT_DATA = frozenset({"readme.md", ".gitattributes", ".gitignore"})
# A batch holds at most this many rows and about this many bytes (the last piece added may pass it).
BATCH_ROWS = 65_536
BATCH_BYTES = 64 << 20
# Bytes read at a time when hashing a local data file.
HASH_CHUNK = 8 << 20


def is_local(location: str) -> bool:
    """Whether ``location`` names a local path: it exists, or looks like a path and not ``owner/name``."""
    if Path(location).exists():
        return True
    return location.startswith(("/", ".", "~")) or location.count("/") > 1 or "\\" in location


def local_data_files(spec: SourceSpec, location: str) -> tuple[str, list[str]]:
    """The builder and every data file of a local source path, in name order.

    Every file under the folder is read: one that is not a data file of the source, or a mix of
    formats (datasets reads one format per split), is refused by name rather than left out. A hidden
    file, or one in a hidden folder, with a data extension (``.ipynb_checkpoints/*.jsonl``, an
    editor's or macOS's ``._train.parquet``) is refused by name too: it is neither read (it is most
    likely a stale copy) nor skipped. Hidden files that are not data (``.git``,
    ``.cache/huggingface``, ``.DS_Store``, swap files) are not read.
    """
    source = f"{spec.key} ({spec.hub_id})"
    path = Path(location).expanduser()
    if not path.exists():
        raise SourceReadError(
            f"{source}: the local path {location} does not exist; pass a folder of the source's data "
            f"files ({'/'.join(spec.extensions)}) or the hub id {spec.hub_id}"
        )
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    files = [p for p in files if p.name.lower() not in NOT_DATA]
    hidden = [p for p in files if _hidden(p, path)]
    hidden_data = [p for p in hidden if _extension(p) in BUILDERS]
    if hidden_data:
        raise SourceReadError(
            f"{source}: {location} holds hidden data file(s) {', '.join(str(p) for p in hidden_data)}; "
            "a hidden file is neither read nor skipped (editors and notebooks leave such copies), so "
            "remove them, or rename them (no leading dot in the name or its folders) to read them"
        )
    files = [p for p in files if p not in hidden]
    extension = {p: _extension(p) for p in files}
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


def _extension(path: Path) -> str:
    """The file name's last extension, lower case (``.jsonl`` alone counts as ``jsonl``)."""
    return path.name.rsplit(".", 1)[1].lower() if "." in path.name else ""


def _hidden(path: Path, root: Path) -> bool:
    """Whether a file lies in a hidden folder (``.cache``, ``.git``) or is hidden itself, under ``root``."""
    return any(part.startswith(".") for part in path.relative_to(root).parts) if path != root else False


@dataclass(frozen=True)
class Batch:
    """Rows ``start`` .. ``start + table.num_rows - 1`` of a split (counting from 0 over its files)."""

    start: int
    table: pa.Table


class SourceReader:
    """One source's split as record batches; iterate it again to read it again (the cache stays).

    ``schema`` is the split's Arrow schema. Batches come in split order, each at most
    ``batch_rows`` rows and about ``batch_bytes`` bytes, the first ``limit`` rows only when given;
    an empty split gives one empty batch, so its schema is still checked.
    """

    def __init__(
        self,
        spec: SourceSpec,
        location: str,
        limit: int | None = None,
        revision: str | None = None,
        batch_rows: int = BATCH_ROWS,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.spec, self.location, self.limit = spec, location, limit
        self.batch_rows, self.batch_bytes = max(1, batch_rows), max(1, batch_bytes)
        self.source = f"{spec.key} ({spec.hub_id})"
        # A local folder's builder and data files (in split order); none for a hub id.
        self.builder, self.data_files = local_data_files(spec, location) if is_local(location) else ("", [])
        dataset = _load(spec, location, revision, self.builder, self.data_files)
        self.schema: pa.Schema = dataset.data.schema
        # The cache files, not the dataset: opening its memory map touches a page run per stored
        # batch (tens of bytes a row, held as the process's memory), so it is closed here.
        self._blocks = _blocks(dataset.data)
        del dataset
        _release_memory()

    def __iter__(self) -> Iterator[Batch]:
        start, pieces, rows, size = 0, list[pa.RecordBatch](), 0, 0
        left = self.limit
        for stored in _stored_batches(self._blocks):
            offset = 0
            while offset < stored.num_rows and (left is None or left > 0):
                room = self.batch_rows - rows if left is None else min(self.batch_rows - rows, left)
                take = min(room, stored.num_rows - offset)
                piece = stored.slice(offset, take)
                offset, rows, size = offset + take, rows + take, size + piece.nbytes
                left = None if left is None else left - take
                pieces.append(piece)
                if rows >= self.batch_rows or size >= self.batch_bytes:
                    yield Batch(start, pa.Table.from_batches(pieces, schema=self.schema))
                    start, pieces, rows, size = start + rows, [], 0, 0
            if left == 0:
                break
        if pieces or start == 0:
            yield Batch(start, pa.Table.from_batches(pieces, schema=self.schema))

    def check_utf8(self, batch: Batch) -> None:
        """Refuse text that is not valid UTF-8, naming the first row and column that hold it.

        Readers pass undecodable bytes through into Arrow strings, where they fail much later
        (writing or reading a shard). A full validation is one pass; a bad batch is bisected to
        its first bad row.
        """
        table = batch.table
        if _valid(table):
            return
        lo, hi = 0, table.num_rows
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if not _valid(table.slice(lo, mid - lo)) else (mid, hi)
        row = table.slice(lo, 1)
        columns = [name for name in row.column_names if not _valid(row.select([name]))]
        raise SourceReadError(
            f"{self.source}: {self._where(batch.start + lo)} holds text that is not valid UTF-8 in "
            f"column(s) {columns}; re-encode the file as UTF-8 or drop the row"
        )

    def _where(self, row: int) -> str:
        """Row ``row`` of the split as ``row R of FILE`` (counting from 0 in that file), where known.

        A folder of several files adds the split's row; the file is found by reading the files'
        row counts in split order (an error path only). A hub split is named by its location.
        """
        if len(self.data_files) == 1:
            return f"row {row} of {self.data_files[0]}"
        if not self.data_files:
            return f"row {row} of {self.location}"
        first = 0
        for data_file in self.data_files:
            rows = _load_local(self.spec, self.builder, [data_file], "train").num_rows
            if row < first + rows:
                return (
                    f"row {row - first} of {data_file} (row {row} of the split, counting from 0 over "
                    f"the files of {self.location} in name order)"
                )
            first += rows
        return f"row {row} of {self.location} (counting from 0 over its files in name order)"

    def read_all(self) -> pa.Table:
        """The whole split (or its first ``limit`` rows) as one table, UTF-8 checked."""
        batches = list(self)
        for batch in batches:
            self.check_utf8(batch)
        return pa.concat_tables([b.table for b in batches])


def _release_memory() -> None:
    """Give back what building datasets' cache left in the allocators' free lists (not in use).

    Arrow's pool releases its unused pages; glibc's ``malloc_trim`` returns the free memory of its
    arenas (the cache build leaves hundreds of MB there); elsewhere it is skipped.
    """
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)


def _blocks(table: Any) -> list[Path | pa.Table]:
    """Where a datasets table's rows are, in order: its cache files, else the table itself.

    Each memory-mapped block without replays but a schema-metadata change is named by its file;
    any other layout (in memory, sliced, columns added) is the table itself (memory-mapped).
    """
    from datasets.table import ConcatenationTable, MemoryMappedTable

    blocks = table.blocks if isinstance(table, ConcatenationTable) else [[table]]
    files: list[Path | pa.Table] = []
    for row in blocks:
        block = row[0] if len(row) == 1 else None
        replays = getattr(block, "replays", None) or []
        if not isinstance(block, MemoryMappedTable) or any(
            r[0] != "replace_schema_metadata" for r in replays
        ):
            return [table.table]
        files.append(Path(block.path))
    return files


def _stored_batches(blocks: list[Path | pa.Table]) -> Iterator[pa.RecordBatch]:
    """The record batches of ``blocks`` in order, a cache file's read with plain reads (no memory map)."""
    for block in blocks:
        if isinstance(block, Path):
            with pa.OSFile(str(block)) as handle:
                yield from pa.ipc.open_stream(handle)
        else:
            yield from block.to_batches()


def _load(spec: SourceSpec, location: str, revision: str | None, builder: str, data_files: list[str]) -> Any:
    """The split as a datasets ``Dataset`` (Arrow cache files, memory-mapped, not read yet).

    ``builder`` and ``data_files`` are a local folder's (:func:`local_data_files`); empty for a hub id.
    """
    from datasets import load_dataset  # heavy import, only when reading

    split = spec.split
    if data_files:
        empty = [f for f in data_files if Path(f).stat().st_size == 0]
        if empty:
            raise SourceReadError(
                f"{spec.key} ({spec.hub_id}): empty data file(s) {', '.join(empty)}; remove them or fill them"
            )
    try:
        if data_files:
            return _load_local(spec, builder, data_files, split)
        return load_dataset(location, name=spec.subset, revision=revision or spec.revision, split=split)
    except SourceReadError:
        raise
    except Exception as exc:  # datasets raises many types; all mean "cannot read this source"
        where = _failing_file(spec, builder, data_files) if len(data_files) > 1 else location
        raise SourceReadError(
            f"{spec.key} ({spec.hub_id}): cannot read split '{split}' from {where}: {_root_cause(exc)}. "
            f"Check that the files are valid {'/'.join(spec.extensions)} with one type per column (and, "
            "for parquet, one schema across files), or that the hub id, subset and revision exist."
        ) from exc


def _load_local(spec: SourceSpec, builder: str, data_files: list[str], split: str) -> Any:
    """Local ``data_files`` as one split, from a cache built for exactly their bytes (module docstring).

    The config name carries :func:`content_key`, so datasets' cache folder differs whenever a
    file's bytes do. A file whose stat (:func:`_stamps`) moved while it was hashed and read leaves
    no cache (it may hold other bytes than the key says) and is refused.
    """
    from datasets import load_dataset

    before = _stamps(data_files)
    dataset = load_dataset(
        builder, name=f"hala-{content_key(data_files)}", data_files={split: data_files}, split=split
    )
    after = _stamps(data_files)
    changed = [f for f in data_files if after[f] != before[f]]
    if changed:
        _remove_cache(dataset)
        raise SourceReadError(
            f"{spec.key} ({spec.hub_id}): {', '.join(changed)} changed while being read; read the "
            "source again once nothing writes to it"
        )
    return dataset


def content_key(data_files: Sequence[str]) -> str:
    """xxh3-128 of each file's name, size and bytes, in order: the cache key of a local split."""
    digest = xxhash.xxh3_128()
    for data_file in data_files:
        with open(data_file, "rb") as handle:
            digest.update(f"{data_file}\0{Path(data_file).stat().st_size}\0".encode())
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _stamps(data_files: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
    """Each file's inode, size, mtime and ctime (ns): what moves when a file is written while read.

    The ctime and inode catch what the mtime alone does not: a rewrite whose mtime is put back
    (``cp -p``, ``touch -r``) changes the ctime, and ``rsync -t`` renames a new file over the old.
    """
    stats = {f: Path(f).stat() for f in data_files}
    return {f: (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for f, st in stats.items()}


def _remove_cache(dataset: Any) -> None:
    """Delete the cache folder a local split was just written to (it may hold other bytes)."""
    for folder in {Path(c["filename"]).parent for c in dataset.cache_files}:
        shutil.rmtree(folder, ignore_errors=True)


def _failing_file(spec: SourceSpec, builder: str, data_files: list[str]) -> str:
    """The first of ``data_files`` that does not read alone, or all of them (a schema clash)."""
    for data_file in data_files:
        try:
            _load_local(spec, builder, [data_file], "train")
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


def _valid(table: pa.Table) -> bool:
    try:
        table.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True
