"""Kept records into shard files by a stable hash of their id, written batch by batch.

A record's shard is ``stable_hash(id) % num_shards``; within a shard, records keep their input
order, so a rerun writes the same rows in the same order to the same files, whatever the batch
size. Each shard is one Parquet file written through a ``ParquetWriter`` (one row group per batch
and shard), so no shard is ever held whole. The fingerprint is a SHA-256 over the shards' content
(each column's values and lengths, shard after shard), not over the file bytes: it does not depend
on how the rows were batched.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hala.sources.base import RECORD_SCHEMA
from hala.sources.columnar import stable_shard


def shard_name(index: int, num_shards: int) -> str:
    """File name of one shard."""
    return f"shard-{index:05d}-of-{num_shards:05d}.parquet"


def shard_of(hashes: np.ndarray, num_shards: int) -> np.ndarray:
    """The shard of each id from its :func:`stable_hash`."""
    return (hashes % np.uint64(num_shards)).astype(np.int64)


def shard_indices(table: pa.Table, num_shards: int, hashes: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices of each shard, by a stable hash of the record id (input order kept within a shard).

    ``hashes`` are the ids' :func:`stable_hash` values when already known.
    """
    shards = stable_shard(table.column("id"), num_shards) if hashes is None else shard_of(hashes, num_shards)
    order = np.argsort(shards, kind="stable")
    bounds = np.searchsorted(shards[order], np.arange(num_shards + 1))
    return [order[bounds[s] : bounds[s + 1]] for s in range(num_shards)]


@dataclass(frozen=True)
class _Strings:
    """A string column's lengths (int64, nulls as -1), offsets and bytes, for byte ranges of rows."""

    lengths: np.ndarray
    offsets: np.ndarray
    data: memoryview

    @classmethod
    def of(cls, array: pa.Array) -> _Strings:
        lengths = pc.fill_null(pc.binary_length(array), -1).to_numpy(zero_copy_only=False).astype("<i8")
        offsets = np.frombuffer(
            array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4
        )
        data = array.buffers()[2]
        return cls(lengths, offsets, memoryview(b"" if data is None else data))

    def parts(self, lo: int, hi: int) -> tuple[bytes, memoryview]:
        """Lengths and bytes of rows ``lo`` .. ``hi - 1``."""
        return self.lengths[lo:hi].tobytes(), self.data[self.offsets[lo] : self.offsets[hi]]


@dataclass(frozen=True)
class _Columns:
    """The parts of a contiguous records table that :class:`ContentDigest` hashes."""

    strings: dict[str, _Strings]  # id and meta per record, role and content per turn
    turns: np.ndarray  # turns per record
    first_turn: np.ndarray  # index of each record's first turn, and one past the last

    @classmethod
    def of(cls, records: pa.Table) -> _Columns:
        messages = records.column("messages").chunk(0)
        items = pc.list_flatten(messages)
        turns = pc.list_value_length(messages).to_numpy(zero_copy_only=False).astype("<i8")
        strings = {
            "id": _Strings.of(records.column("id").chunk(0)),
            "meta": _Strings.of(records.column("meta").chunk(0)),
            "role": _Strings.of(pc.struct_field(items, "role")),
            "content": _Strings.of(pc.struct_field(items, "content")),
        }
        return cls(strings, turns, np.concatenate([[0], np.cumsum(turns)]))


class ContentDigest:
    """A SHA-256 of records' ``id``, ``messages`` and ``meta`` that does not depend on their batching.

    Each part (ids, turns per record, roles, contents, meta; lengths and bytes apart) feeds its own
    hash, so adding the records batch after batch gives the same digest as adding them at once.
    """

    def __init__(self) -> None:
        self.rows = 0
        self._parts: dict[str, hashlib._Hash] = {}

    def _feed(self, name: str, data: bytes | memoryview) -> None:
        self._parts.setdefault(name, hashlib.sha256()).update(data)

    def update(self, columns: _Columns, lo: int, hi: int) -> None:
        """Add records ``lo`` .. ``hi - 1`` of a table's :class:`_Columns` (in order) to the digest."""
        self._feed("turns.lengths", columns.turns[lo:hi].tobytes())
        first, last = int(columns.first_turn[lo]), int(columns.first_turn[hi])
        for name, strings in columns.strings.items():
            lengths, values = strings.parts(*((lo, hi) if name in ("id", "meta") else (first, last)))
            self._feed(f"{name}.lengths", lengths)
            self._feed(f"{name}.bytes", values)
        self.rows += hi - lo

    def digest(self) -> bytes:
        """The digest of every record added."""
        total = hashlib.sha256()
        for name in sorted(self._parts):
            total.update(name.encode() + self._parts[name].digest())
        total.update(str(self.rows).encode())
        return total.digest()


class ShardWriter:
    """Write kept records to ``out_dir/shards/shard-XXXXX-of-YYYYY.parquet``, batch after batch.

    An earlier run's shard files are removed first, never mixed with the new ones. A batch is
    ordered by shard once (input order kept within a shard), then each shard's slice is written
    and hashed, in ``workers`` threads (Parquet encoding and hashing release the GIL).
    """

    def __init__(
        self, out_dir: Path, num_shards: int, schema: pa.Schema = RECORD_SCHEMA, workers: int | None = None
    ) -> None:
        self.num_shards, self.schema = num_shards, schema
        self.folder = out_dir / "shards"
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("shard-*.parquet"):
            stale.unlink()
        self.paths = [self.folder / shard_name(i, num_shards) for i in range(num_shards)]
        # Dictionary encoding only pays off on the low-cardinality column. Statistics (min and max per
        # row group, kept in memory until the file closes) only on the short columns: up to 8 KB per
        # row group of long text otherwise, for a row group per batch and shard.
        self._writers = [
            pq.ParquetWriter(p, schema, use_dictionary=["source"], write_statistics=["id", "source"])
            for p in self.paths
        ]
        self._digests = [ContentDigest() for _ in range(num_shards)]
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
        self.rows = 0

    def write(self, records: pa.Table, hashes: np.ndarray) -> None:
        """Append ``records`` (``hashes``: the :func:`stable_hash` of their ids) to their shards."""
        if not records.num_rows:
            return
        shards = shard_of(hashes, self.num_shards)
        order = np.argsort(shards, kind="stable")
        bounds = np.searchsorted(shards[order], np.arange(self.num_shards + 1)).tolist()
        ordered = records.take(pa.array(order)).combine_chunks()
        columns = _Columns.of(ordered)

        def write(index: int) -> None:
            lo, hi = bounds[index], bounds[index + 1]
            self._writers[index].write_table(ordered.slice(lo, hi - lo))
            self._digests[index].update(columns, lo, hi)

        list(self._pool.map(write, [i for i in range(self.num_shards) if bounds[i + 1] > bounds[i]]))
        self.rows += records.num_rows

    def close(self) -> str:
        """Finish every shard file; the fingerprint of the shards' content (hex)."""
        self._pool.shutdown()
        for writer in self._writers:
            writer.close()
        total = hashlib.sha256()
        for digest in self._digests:
            total.update(digest.digest())
        return total.hexdigest()

    def abort(self) -> None:
        """Close and remove the shard files of a failed run, so no partial shard is left behind."""
        self._pool.shutdown()
        for writer, path in zip(self._writers, self.paths, strict=True):
            writer.close()
            path.unlink(missing_ok=True)
