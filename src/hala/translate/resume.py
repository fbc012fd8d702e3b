"""Resumable batch processing of one shard: a retried task continues from what it already wrote.

Records are processed in batches; after each batch its outputs and its quarantined ids are written
as part files, each with an atomic rename, quarantine first. On a restart, every id found in a
part is skipped, so each input id ends up exactly once: in the output or in the quarantine with a
reason. When the shard is done the parts are merged into ``output.parquet`` and
``quarantine.parquet`` and removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

Process = Callable[[pa.Table], tuple[pa.Table, pa.Table]]
OUTPUT, QUARANTINE = "output.parquet", "quarantine.parquet"


@dataclass
class ShardResult:
    """Counts of one processed shard."""

    read: int
    kept: int
    quarantined: int
    resumed: int  # ids already done by an earlier attempt

    def balanced(self) -> bool:
        """Whether every input id is accounted for."""
        return self.read == self.kept + self.quarantined


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _done_ids(parts: Path) -> tuple[set[str], int]:
    done: set[str] = set()
    last = -1
    for path in sorted(parts.glob("*.parquet")):
        done.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
        last = max(last, int(path.name.split(".")[0]))
    return done, last + 1


def _merge(parts: Path, suffix: str, empty: pa.Table) -> pa.Table:
    paths = sorted(parts.glob(f"*.{suffix}.parquet"))
    return pa.concat_tables([empty, *(pq.read_table(p) for p in paths)]) if paths else empty


def process_shard(
    records: pa.Table, out_dir: Path, process: Process, batch_size: int, schemas: tuple[pa.Schema, pa.Schema]
) -> ShardResult:
    """Run ``process`` over ``records`` in batches, resuming from the parts an earlier attempt wrote.

    ``process`` maps a non-empty batch of records to ``(outputs, quarantine)`` with the two
    ``schemas``; both carry an ``id`` column and together hold every id of the batch exactly once.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / OUTPUT).exists() and (out_dir / QUARANTINE).exists():
        kept = pq.read_metadata(out_dir / OUTPUT).num_rows
        bad = pq.read_metadata(out_dir / QUARANTINE).num_rows
        return ShardResult(read=kept + bad, kept=kept, quarantined=bad, resumed=kept + bad)
    parts = out_dir / "parts"
    parts.mkdir(exist_ok=True)
    done, next_part = _done_ids(parts)
    todo = records.filter(pc.invert(pc.is_in(records.column("id"), pa.array(sorted(done), pa.string()))))
    for start in range(0, todo.num_rows, batch_size):
        batch = todo.slice(start, batch_size)
        outputs, quarantine = process(batch)
        seen = set(outputs.column("id").to_pylist()) | set(quarantine.column("id").to_pylist())
        if seen != set(batch.column("id").to_pylist()) or len(seen) != outputs.num_rows + quarantine.num_rows:
            raise RuntimeError("process() must return every id of its batch exactly once")
        _write_atomic(quarantine, parts / f"{next_part:06d}.quarantine.parquet")
        _write_atomic(outputs, parts / f"{next_part:06d}.output.parquet")
        next_part += 1
    merged_out = _merge(parts, "output", schemas[0].empty_table())
    merged_bad = _merge(parts, "quarantine", schemas[1].empty_table())
    _write_atomic(merged_bad, out_dir / QUARANTINE)
    _write_atomic(merged_out, out_dir / OUTPUT)
    for path in parts.glob("*.parquet"):
        path.unlink()
    parts.rmdir()
    return ShardResult(
        read=records.num_rows,
        kept=merged_out.num_rows,
        quarantined=merged_bad.num_rows,
        resumed=len(done),
    )
