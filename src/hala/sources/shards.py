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


def _strings(array: pa.Array) -> tuple[bytes, memoryview]:
    """The lengths (int64, nulls as -1) and the concatenated bytes of a string array, however sliced."""
    lengths = pc.fill_null(pc.binary_length(array), -1).to_numpy(zero_copy_only=False).astype("<i8")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
    data = array.buffers()[2]
    values = memoryview(b"" if data is None else data)[offsets[0] : offsets[-1]]
    return lengths.tobytes(), values


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

    def update(self, records: pa.Table) -> None:
        """Add records (in order) to the digest."""
        if not records.num_rows:
            return
        records = records.combine_chunks()
        messages = records.column("messages").chunk(0)
        items = pc.list_flatten(messages)
        turns = pc.list_value_length(messages).to_numpy(zero_copy_only=False).astype("<i8")
        self._feed("turns.lengths", turns.tobytes())
        strings = {
            "id": records.column("id").chunk(0),
            "role": pc.struct_field(items, "role"),
            "content": pc.struct_field(items, "content"),
            "meta": records.column("meta").chunk(0),
        }
        for name, array in strings.items():
            lengths, values = _strings(array)
            self._feed(f"{name}.lengths", lengths)
            self._feed(f"{name}.bytes", values)
        self.rows += records.num_rows

    def digest(self) -> bytes:
        """The digest of every record added."""
        total = hashlib.sha256()
        for name in sorted(self._parts):
            total.update(name.encode() + self._parts[name].digest())
        total.update(str(self.rows).encode())
        return total.digest()


class ShardWriter:
    """Write kept records to ``out_dir/shards/shard-XXXXX-of-YYYYY.parquet``, batch after batch.

    An earlier run's shard files are removed first, never mixed with the new ones.
    """

    def __init__(self, out_dir: Path, num_shards: int, schema: pa.Schema = RECORD_SCHEMA) -> None:
        self.num_shards, self.schema = num_shards, schema
        self.folder = out_dir / "shards"
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("shard-*.parquet"):
            stale.unlink()
        self.paths = [self.folder / shard_name(i, num_shards) for i in range(num_shards)]
        # Dictionary encoding only pays off on the low-cardinality column.
        self._writers = [pq.ParquetWriter(p, schema, use_dictionary=["source"]) for p in self.paths]
        self._digests = [ContentDigest() for _ in range(num_shards)]
        self.rows = 0

    def write(self, records: pa.Table, hashes: np.ndarray) -> None:
        """Append ``records`` (``hashes``: the :func:`stable_hash` of their ids) to their shards."""
        if not records.num_rows:
            return
        batches = records.to_batches()  # take per batch: a take across chunks would concatenate them
        bounds = np.cumsum([0] + [b.num_rows for b in batches])
        for index, rows in enumerate(shard_indices(records, self.num_shards, hashes)):
            if not rows.size:
                continue
            parts = [
                batch.take(pa.array(rows[(rows >= lo) & (rows < hi)] - lo))
                for batch, lo, hi in zip(batches, bounds[:-1], bounds[1:], strict=True)
            ]
            shard = pa.Table.from_batches(parts, schema=self.schema).combine_chunks()
            self._writers[index].write_table(shard)
            self._digests[index].update(shard)
        self.rows += records.num_rows

    def close(self) -> str:
        """Finish every shard file; the fingerprint of the shards' content (hex)."""
        for writer in self._writers:
            writer.close()
        total = hashlib.sha256()
        for digest in self._digests:
            total.update(digest.digest())
        return total.hexdigest()

    def abort(self) -> None:
        """Close and remove the shard files of a failed run, so no partial shard is left behind."""
        for writer, path in zip(self._writers, self.paths, strict=True):
            writer.close()
            path.unlink(missing_ok=True)
