"""The Arabic corpus: every instruction source's translated shards, assembled in one pass.

Input: per source, the shard folders of ``corpus_translate`` (each holds ``output.parquet`` in the
translated-record schema, ``quarantine.parquet`` and ``counts.json``). Output folder, the layout SFT
and the contamination check read::

    <source>.parquet     that source's translated records, its shards in the order given
    sources.json         rows per source, sorted by source

Each source's file is written through one ``ParquetWriter``, a shard's row groups appended a few
thousand rows at a time, so memory holds one such piece, never a source or the corpus.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hala.errors import HalaError
from hala.translate.resume import OUTPUT

# Rows read from a shard at a time.
READ_ROWS = 8_192


@dataclass(frozen=True)
class CorpusCounts:
    """Rows written per source (as in ``sources.json``)."""

    rows: dict[str, int]

    @property
    def total(self) -> int:
        """Rows of the whole corpus."""
        return sum(self.rows.values())


class CorpusError(HalaError):
    """A translated shard is missing or does not have the schema of the others."""


def _columns(schema: pa.Schema) -> str:
    return ", ".join(f"{field.name}: {field.type}" for field in schema)


def _copy_shard(
    source: str, file: Path, schema: pa.Schema, writer: pq.ParquetWriter, batch_rows: int, first: Path
) -> int:
    """Append one shard's rows to ``writer``, ``batch_rows`` at a time; the rows copied."""
    rows = 0
    with pq.ParquetFile(file) as shard:
        if not shard.schema_arrow.equals(schema):
            raise CorpusError(
                f"corpus: source {source}: {file} has the schema ({_columns(shard.schema_arrow)}), not "
                f"that of {first} ({_columns(schema)}); were the shards written by the same stage?"
            )
        for batch in shard.iter_batches(batch_size=batch_rows):
            writer.write_table(pa.Table.from_batches([batch], schema=schema))
            rows += batch.num_rows
    return rows


def _append_shards(source: str, shard_dirs: Sequence[str | Path], path: Path, batch_rows: int) -> int:
    """Write one source's shards into ``path`` (atomically); the rows written."""
    if not shard_dirs:
        raise CorpusError(f"corpus: source {source} has no translated shard folders")
    files = [Path(d) / OUTPUT for d in shard_dirs]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CorpusError(f"corpus: source {source}: no {OUTPUT} in {', '.join(missing)}")
    schema = pq.read_schema(files[0])
    tmp = path.with_name(f".{path.name}.tmp")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for file in files:
                rows += _copy_shard(source, file, schema, writer, batch_rows, files[0])
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return rows


def assemble_corpus(
    shards: Mapping[str, Sequence[str | Path]], out_dir: str | Path, batch_rows: int = READ_ROWS
) -> CorpusCounts:
    """Write ``<source>.parquet`` for every source of ``shards``, then ``sources.json``; rows per source.

    ``shards`` maps each source to its translated shard folders (the ``corpus_translate`` outputs,
    in shard order). The sources are written one after the other in one task; a source's file
    holds its shards' rows in the order given.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = {
        source: _append_shards(source, dirs, out / f"{source}.parquet", batch_rows)
        for source, dirs in shards.items()
    }
    counts = CorpusCounts(dict(sorted(rows.items())))
    (out / "sources.json").write_text(json.dumps(counts.rows, indent=2, sort_keys=True) + "\n")
    return counts
