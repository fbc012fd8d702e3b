"""The Arabic corpus assembled in one pass from every source's translated shards."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hala.corpus import CorpusCounts, CorpusError, assemble_corpus
from hala.training.data import parquet_files, read_messages
from hala.translate.conversations import TRANSLATED_SCHEMA


def _records(source: str, start: int, n: int) -> pa.Table:
    rows = [
        {
            "id": f"{source}:{i}",
            "source": source,
            "messages": [
                {"role": "user", "content": f"سؤال {i}"},
                {"role": "assistant", "content": f"جواب {i}"},
            ],
            "messages_en": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ],
            "meta": None,
        }
        for i in range(start, start + n)
    ]
    return pa.Table.from_pylist(rows, schema=TRANSLATED_SCHEMA)


def _shard(root: Path, source: str, index: int, table: pa.Table) -> Path:
    """A corpus_translate output folder: output.parquet (two row groups), quarantine, counts."""
    folder = root / f"{source}-{index}"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "output.parquet", row_group_size=max(1, table.num_rows // 2))
    (folder / "counts.json").write_text(json.dumps({"read": table.num_rows, "kept": table.num_rows}))
    return folder


def test_every_source_is_written_whole_and_in_shard_order(tmp_path: Path) -> None:
    tables = {
        "hermes3": [_records("hermes3", 0, 5), _records("hermes3", 5, 0), _records("hermes3", 5, 7)],
        "tulu3": [_records("tulu3", 0, 4)],
    }
    shards = {s: [_shard(tmp_path / "in", s, i, t) for i, t in enumerate(ts)] for s, ts in tables.items()}
    counts = assemble_corpus(shards, tmp_path / "corpus", batch_rows=2)
    assert counts == CorpusCounts({"hermes3": 12, "tulu3": 4}) and counts.total == 16
    for source, parts in tables.items():
        written = pq.read_table(tmp_path / "corpus" / f"{source}.parquet")
        assert written.schema.equals(TRANSLATED_SCHEMA)
        assert written.to_pylist() == pa.concat_tables(parts).to_pylist()
    assert json.loads((tmp_path / "corpus" / "sources.json").read_text()) == {"hermes3": 12, "tulu3": 4}
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == [
        "hermes3.parquet",
        "sources.json",
        "tulu3.parquet",
    ]


def test_sft_reads_every_conversation_of_the_corpus(tmp_path: Path) -> None:
    shards = {
        "lamini": [_shard(tmp_path, "lamini", 0, _records("lamini", 0, 3))],
        "hermes3": [_shard(tmp_path, "hermes3", 0, _records("hermes3", 0, 2))],
    }
    assemble_corpus(shards, tmp_path / "corpus")
    conversations = read_messages(parquet_files([tmp_path / "corpus"]))
    assert len(conversations) == 5
    assert conversations[0] == [
        {"role": "user", "content": "سؤال 0"},
        {"role": "assistant", "content": "جواب 0"},
    ]


def test_a_shard_with_another_schema_is_named(tmp_path: Path) -> None:
    odd = _records("tulu3", 3, 2).drop_columns(["messages_en"])
    shards = {
        "tulu3": [_shard(tmp_path, "tulu3", 0, _records("tulu3", 0, 3)), _shard(tmp_path, "tulu3", 1, odd)]
    }
    with pytest.raises(CorpusError, match=r"source tulu3: \S*tulu3-1/output.parquet has the schema"):
        assemble_corpus(shards, tmp_path / "corpus")
    assert not list((tmp_path / "corpus").iterdir())  # no partial file left


def test_a_shard_folder_without_output_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"source lamini: no output.parquet in \S*empty"):
        assemble_corpus({"lamini": [tmp_path / "empty"]}, tmp_path / "corpus")
    with pytest.raises(CorpusError, match="source lamini has no translated shard folders"):
        assemble_corpus({"lamini": []}, tmp_path / "corpus")
