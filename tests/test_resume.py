"""A shard task killed part-way resumes from what it wrote: every id ends up exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES
from hala.config import load_preset
from hala.prepare import prepare_source
from hala.sources import SOURCES
from hala.stages import teacher
from hala.stages.context import ENV_EXPERIMENT, ENV_RUN_ID, ENV_WORK_ROOT, work_key
from hala.translate.resume import process_shard

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
from hala import tracking
from hala.stages import teacher
from hala.stages.shards import ShardPaths
settings_json, model, prepared, out = sys.argv[1:5]
if tracking.find_pipeline_run("hala-tiny", "kfp-resume") is None:
    tracking.start_pipeline_run("hala-tiny", "r", {}, "kfp-resume")
settings = teacher.TeacherSettings.model_validate_json(settings_json)
teacher.run(settings, ShardPaths(0, model, prepared, out))
"""


def _ids(path: Path) -> list[str]:
    return pq.read_table(path, columns=["id"]).column("id").to_pylist()


def test_killed_shard_resumes_and_every_id_lands_once(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    preset = load_preset("tiny")
    prepared = tmp_path / "prepared"
    shards = preset.data.num_shards
    prepare_source(SOURCES["openorca"], str(FIXTURES / "openorca"), prepared, num_shards=shards)
    inputs = _ids(prepared / "shards" / f"shard-00000-of-{shards:05d}.parquet")
    work_root, out = tmp_path / "work", tmp_path / "out"
    settings = teacher.settings(preset)
    # many small parts: the kill lands between two
    engine = settings.engine.model_copy(update={"checkpoint_records": 2})
    settings = settings.model_copy(update={"engine": engine})
    key = work_key(settings.to_json(), [str(tiny_models["teacher"]), str(prepared)])
    work = work_root / "teacher_translate" / key / "shard-00000"
    model = str(tiny_models["teacher"])
    args = [sys.executable, "-c", SCRIPT, settings.to_json(), model, str(prepared), str(out)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        ENV_RUN_ID: "kfp-resume",
        ENV_EXPERIMENT: "hala-tiny",
        ENV_WORK_ROOT: str(work_root),
    }

    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((work / "parts").glob("*.output.parquet")) and time.monotonic() < deadline:
        assert first.poll() is None, "the first attempt ended before writing its first part"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = {i for p in (work / "parts").glob("*.parquet") for i in _ids(p)}
    assert 0 < len(done_before) < len(inputs), "kill the shard part-way, not before or after"

    subprocess.run(args, env=env, check=True, capture_output=True)
    kept, quarantined = _ids(out / "output.parquet"), _ids(out / "quarantine.parquet")
    assert sorted(kept + quarantined) == sorted(inputs)  # each id exactly once, nothing lost
    assert not set(kept) & set(quarantined)
    counts = json.loads((out / "counts.json").read_text())
    assert counts["resumed"] == len(done_before)
    assert counts["read"] == counts["kept"] + counts["quarantined"] == len(inputs)
    assert not (work / "parts").exists()


def test_process_shard_refuses_a_batch_that_loses_an_id(tmp_path: Path) -> None:
    records = pa.table({"id": ["a", "b", "c"]})
    schemas = (records.schema, pa.schema([("id", pa.string()), ("reason", pa.string())]))

    def lossy(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        return batch.slice(0, 1), schemas[1].empty_table()

    with pytest.raises(RuntimeError, match="every id of its batch exactly once"):
        process_shard(records, tmp_path, lossy, batch_size=3, schemas=schemas)


def test_finished_shard_is_not_processed_again(tmp_path: Path) -> None:
    records = pa.table({"id": ["a", "b", "c"]})
    schemas = (records.schema, pa.schema([("id", pa.string()), ("reason", pa.string())]))
    calls: list[int] = []

    def keep_all(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        calls.append(batch.num_rows)
        return batch, schemas[1].empty_table()

    first = process_shard(records, tmp_path, keep_all, batch_size=2, schemas=schemas)
    again = process_shard(records, tmp_path, keep_all, batch_size=2, schemas=schemas)
    assert calls == [2, 1]
    assert (first.kept, again.kept, again.resumed) == (3, 3, 3)
