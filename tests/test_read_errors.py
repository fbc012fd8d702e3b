"""Reading a local folder (issue 15): never from a stale cache, no hidden file skipped, errors name files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from hala.errors import SourceReadError
from hala.prepare import prepare_source, read_records, read_source
from hala.sources import SOURCES
from hala.sources.reader import SourceReader

ORCA = {"id": "x.0", "system_prompt": "", "question": "q", "response": "r"}


def _lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _questions(out: Path) -> list[str]:
    return [r["messages"][0]["content"] for r in read_records(out).to_pylist()]


def test_a_file_rewritten_at_the_same_size_with_its_mtime_restored_is_read_anew(tmp_path: Path) -> None:
    """What ``cp -p``, ``rsync -t`` and ``touch -r`` leave: same path, size and mtime, other bytes."""
    folder = tmp_path / "orca"
    folder.mkdir()
    data = folder / "train.jsonl"
    data.write_text(_lines([{**ORCA, "question": "old question"}]))
    stat = data.stat()
    prepare_source(SOURCES["openorca"], str(folder), tmp_path / "first", 1)
    assert _questions(tmp_path / "first") == ["old question"]

    data.write_text(_lines([{**ORCA, "question": "new question"}]))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (data.stat().st_size, data.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    prepare_source(SOURCES["openorca"], str(folder), tmp_path / "second", 1)
    assert _questions(tmp_path / "second") == ["new question"]


def _cache_files(reader: SourceReader) -> list[Path]:
    return [block for block in reader._blocks if isinstance(block, Path)]


def test_an_unchanged_folder_is_read_from_the_cache_it_built(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(_lines([ORCA]))
    first = _cache_files(SourceReader(SOURCES["openorca"], str(tmp_path)))
    mtimes = [p.stat().st_mtime_ns for p in first]
    again = _cache_files(SourceReader(SOURCES["openorca"], str(tmp_path)))
    assert first and again == first and [p.stat().st_mtime_ns for p in again] == mtimes  # not rebuilt


def test_a_file_written_while_it_is_read_leaves_no_cache_and_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is keyed by the bytes hashed before the build: bytes that moved during it are not kept."""
    import datasets

    data = tmp_path / "train.jsonl"
    data.write_text(_lines([ORCA]))
    stat = data.stat()
    real = datasets.load_dataset
    built: list[Path] = []

    def load_then_write(*args: Any, **kwargs: Any) -> Any:
        dataset = real(*args, **kwargs)
        built.extend(Path(c["filename"]) for c in dataset.cache_files)
        data.write_text(_lines([{**ORCA, "question": "z"}]))  # a `cp -p` meanwhile: same size and mtime
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return dataset

    monkeypatch.setattr(datasets, "load_dataset", load_then_write)
    with pytest.raises(SourceReadError, match=r"\S*train\.jsonl changed while being read"):
        SourceReader(SOURCES["openorca"], str(tmp_path))
    assert built and not any(p.exists() for p in built)
    monkeypatch.setattr(datasets, "load_dataset", real)
    assert read_source(SOURCES["openorca"], str(tmp_path)).column("question").to_pylist() == ["z"]


@pytest.mark.parametrize(
    "hidden",
    [
        ".ipynb_checkpoints/train-checkpoint.jsonl",
        "._train.jsonl",
        ".jsonl",
        ".old/more.parquet",
        "sub/.x.csv",
    ],
)
def test_a_hidden_data_file_is_refused_by_name_not_skipped(tmp_path: Path, hidden: str) -> None:
    (tmp_path / "train.jsonl").write_text(_lines([ORCA]))
    (tmp_path / hidden).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / hidden).write_text(_lines([{**ORCA, "id": "x.1"}]))
    with pytest.raises(SourceReadError) as caught:
        read_source(SOURCES["openorca"], str(tmp_path))
    message = str(caught.value)
    assert f"hidden data file(s) {tmp_path / hidden};" in message
    assert "remove them, or rename them" in message


def test_hidden_files_that_are_not_data_are_not_read(tmp_path: Path) -> None:
    """A git clone or a ``hf download --local-dir`` copy carries these beside the data files."""
    (tmp_path / "train.jsonl").write_text(_lines([ORCA]))
    for name in [
        ".git/HEAD",
        ".cache/huggingface/download/train.jsonl.metadata",
        ".DS_Store",
        ".train.jsonl.swp",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("not data\n")
    assert read_source(SOURCES["openorca"], str(tmp_path)).column("id").to_pylist() == ["x.0"]


def test_bad_utf8_in_the_second_file_of_a_folder_names_that_file_and_its_row(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(_lines([{**ORCA, "id": f"a.{i}"} for i in range(3)]))
    good = [json.dumps({**ORCA, "id": f"b.{i}"}).encode() for i in range(2)]
    bad = b'{"id": "b.2", "system_prompt": "", "question": "q\xff", "response": "r"}'
    (tmp_path / "b.jsonl").write_bytes(b"\n".join([*good, bad, good[0].replace(b"b.0", b"b.3")]) + b"\n")
    expected = re.escape(
        f"row 2 of {tmp_path / 'b.jsonl'} (row 5 of the split, counting from 0 over the files of "
        f"{tmp_path} in name order) holds text that is not valid UTF-8 in column(s) ['question']"
    )
    with pytest.raises(SourceReadError, match=expected):
        read_source(SOURCES["openorca"], str(tmp_path))
    out = tmp_path / "out"
    with pytest.raises(SourceReadError, match=expected):  # streamed in batches of two rows: the same
        prepare_source(SOURCES["openorca"], str(tmp_path), out, 2, batch_rows=2)
    assert not list(out.glob("shards/*.parquet"))


def test_bad_utf8_in_a_folder_of_one_file_names_the_file_and_row(tmp_path: Path) -> None:
    bad = b'{"id": "x.1", "system_prompt": "", "question": "q", "response": "r\xfe"}'
    (tmp_path / "train.jsonl").write_bytes(json.dumps(ORCA).encode() + b"\n" + bad + b"\n")
    expected = re.escape(
        f"row 1 of {tmp_path / 'train.jsonl'} holds text that is not valid UTF-8 in column(s) ['response']"
    )
    with pytest.raises(SourceReadError, match=expected):
        read_source(SOURCES["openorca"], str(tmp_path))
