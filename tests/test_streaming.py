"""The data stage streams a source batch by batch: any batch size writes exactly the same output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES
from hala.errors import SourceReadError, SourceSchemaError
from hala.prepare import prepare_source
from hala.sources import SOURCES
from hala.sources.dedup import ClaimedIds
from hala.sources.reader import SourceReader

ORCA = {"id": "x.0", "system_prompt": "", "question": "q", "response": "r"}


def _orca(tmp_path: Path, rows: list[dict]) -> str:
    folder = tmp_path / "orca"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


def _output(folder: Path) -> dict[str, object]:
    """Everything a prepare run wrote: each shard's rows in order, the quarantine, counts.json."""
    shards = {p.name: pq.read_table(p).to_pylist() for p in sorted((folder / "shards").iterdir())}
    counts = json.loads((folder / "counts.json").read_text())
    counts.pop("location")
    return {
        "shards": shards,
        "quarantine": pq.read_table(folder / "quarantine.parquet").to_pylist(),
        **counts,
    }


def _prepare(key: str, location: str, out: Path, batch_rows: int, shards: int = 3) -> dict[str, object]:
    prepare_source(SOURCES[key], location, out, shards, batch_rows=batch_rows)
    return _output(out)


@pytest.mark.parametrize("key", list(SOURCES))
def test_every_fixture_gives_the_same_output_in_batches_of_one_row_as_in_one_batch(
    key: str, tmp_path: Path
) -> None:
    whole = _prepare(key, str(FIXTURES / key), tmp_path / "whole", batch_rows=1_000_000)
    assert _prepare(key, str(FIXTURES / key), tmp_path / "ones", batch_rows=1) == whole
    assert _prepare(key, str(FIXTURES / key), tmp_path / "threes", batch_rows=3) == whole


def test_duplicates_straddling_batches_follow_the_first_valid_occurrence_rule(tmp_path: Path) -> None:
    rows = [{**ORCA, "id": f"x.{i}", "question": f"question {i}"} for i in range(12)]  # twelve distinct rows
    rows[1] = {**rows[1], "response": ""}  # x.1 broken ...
    rows[4] = {**rows[1], "response": "now valid"}  # ... x.1 valid three rows later: kept
    rows[7] = {**rows[4]}  # x.1 again: a duplicate of the kept row
    rows[10] = {**rows[0]}  # x.0 again, two batches after it
    rows[11] = {**rows[11], "question": " "}  # broken, never claims x.11
    rows.append({**ORCA, "id": "x.11"})  # so x.11 is kept here
    location = _orca(tmp_path, rows)
    whole = _prepare("openorca", location, tmp_path / "whole", batch_rows=100)
    for batch_rows in (1, 2, 3, 5):
        assert _prepare("openorca", location, tmp_path / f"b{batch_rows}", batch_rows=batch_rows) == whole
    assert [(q["row"], q["id"], q["reason"]) for q in whole["quarantine"]] == [  # type: ignore[union-attr]
        (1, "openorca:x.1", "empty_text"),
        (7, "openorca:x.1", "duplicate_id"),
        (10, "openorca:x.0", "duplicate_id"),
        (11, "openorca:x.11", "empty_text"),
    ]
    assert (whole["read"], whole["kept"]) == (13, 9)
    kept = {r["id"]: r for rows_ in whole["shards"].values() for r in rows_}  # type: ignore[union-attr]
    assert kept["openorca:x.1"]["messages"][-1]["content"] == "now valid"


def test_within_a_shard_records_keep_their_input_order(tmp_path: Path) -> None:
    location = _orca(tmp_path, [{**ORCA, "id": f"x.{i}"} for i in range(40)])
    out = _prepare("openorca", location, tmp_path / "out", batch_rows=7, shards=2)
    for rows in out["shards"].values():  # type: ignore[union-attr]
        order = [int(r["id"].rsplit(".", 1)[1]) for r in rows]
        assert order == sorted(order) and order


def test_limit_reads_the_first_rows_only_across_batches(tmp_path: Path) -> None:
    location = _orca(tmp_path, [{**ORCA, "id": f"x.{i}"} for i in range(10)])
    reader = SourceReader(SOURCES["openorca"], location, limit=7, batch_rows=3)
    batches = list(reader)
    assert [(b.start, b.table.num_rows) for b in batches] == [(0, 3), (3, 3), (6, 1)]
    ids = [i for b in batches for i in b.table.column("id").to_pylist()]
    assert ids == [f"x.{i}" for i in range(7)]
    counts = prepare_source(SOURCES["openorca"], location, tmp_path / "out", 2, limit=7, batch_rows=3)
    assert (counts.read, counts.kept) == (7, 7)


def test_bad_utf8_in_a_later_batch_names_its_row_and_leaves_no_partial_output(tmp_path: Path) -> None:
    good = [json.dumps({**ORCA, "id": f"x.{i}"}).encode() for i in range(5)]
    bad = b'{"id": "x.5", "system_prompt": "", "question": "q\xff", "response": "r"}'
    folder = tmp_path / "orca"
    folder.mkdir()
    (folder / "train.jsonl").write_bytes(b"\n".join([*good, bad]) + b"\n")
    out = tmp_path / "out"
    with pytest.raises(SourceReadError, match=r"row 5 of .* not valid UTF-8 in column\(s\) \['question'\]"):
        prepare_source(SOURCES["openorca"], str(folder), out, 2, batch_rows=2)
    assert not list(out.glob("shards/*.parquet")) and not (out / "quarantine.parquet").exists()


def test_a_value_of_another_type_in_a_later_batch_is_named_by_its_row(tmp_path: Path) -> None:
    rows = [{**ORCA, "id": f"x.{i}"} for i in range(4)] + [{**ORCA, "id": "x.4", "question": 42}]
    with pytest.raises(SourceSchemaError, match=r"column 'question'.*row 4 holds 42, a int"):
        prepare_source(SOURCES["openorca"], _orca(tmp_path, rows), tmp_path / "out", 1, batch_rows=2)


def _keys(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def test_claimed_ids_across_batches_need_both_hashes_to_match() -> None:
    claimed = ClaimedIds()
    first = claimed.claim(pa.array(["a", "b"]), _keys([1, 2]), _keys([10, 20]))
    assert first.tolist() == [False, False]
    # Same first hash as "a" but another second hash: a 64-bit collision, not a repeat.
    later = claimed.claim(pa.array(["c", "a", "b"]), _keys([1, 1, 2]), _keys([11, 10, 20]))
    assert later.tolist() == [False, True, True]
    # Now two kept ids share the first hash 1: each is still told apart by the second.
    again = claimed.claim(pa.array(["c", "d"]), _keys([1, 1]), _keys([11, 12]))
    assert again.tolist() == [True, False]


@pytest.mark.parametrize("max_run", [64, 1 << 20])
def test_claimed_ids_match_a_set_over_many_batches(max_run: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from hala.sources import dedup
    from hala.sources.columnar import stable_hash_pair

    monkeypatch.setattr(dedup, "MAX_RUN", max_run)  # small: many runs, none merged past 64 keys
    rng = np.random.default_rng(0)
    claimed, seen = ClaimedIds(), set[str]()
    for size in rng.integers(0, 300, size=60).tolist():
        ids = [f"id-{v}" for v in rng.integers(0, 4000, size=size).tolist()]
        first, second = stable_hash_pair(pa.array(ids, pa.string()))
        repeat = claimed.claim(pa.array(ids, pa.string()), first, second).tolist()
        expected = []
        for value in ids:
            expected.append(value in seen)
            seen.add(value)
        assert repeat == expected
    assert len(claimed) == len(seen)
    assert max(len(keys) for keys, _ in claimed._runs) <= max(max_run, 300)
