"""The quarantine guard: a source or shard that loses more rows than its preset allows stops, saying why."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES
from hala.config import load_preset
from hala.prepare import QuarantineLimitError, check_quarantine, prepare_source
from hala.sources import SOURCES
from hala.stages import judge, prepare
from hala.stages.shards import ShardPaths, ShardRunner, run_shard
from hala.translate.conversations import TRANSLATION_QUARANTINE_SCHEMA
from hala.translate.resume import ShardResult, process_shard

ORCA = {"id": "x.1", "system_prompt": "", "question": "What is the capital of France?", "response": "Paris."}


def _quarantine(reasons: list[str]) -> pa.Table:
    rows = [{"id": f"r{i}", "reason": r, "column": "c"} for i, r in enumerate(reasons)]
    return pa.Table.from_pylist(rows, schema=TRANSLATION_QUARANTINE_SCHEMA)


def test_a_loss_over_the_limit_names_fraction_top_reasons_and_example_ids() -> None:
    quarantine = _quarantine(["empty_text"] * 3 + ["duplicate_id"] * 2 + ["null_field"])
    with pytest.raises(QuarantineLimitError) as caught:
        check_quarantine("source openorca", 20, quarantine, 0.05)
    message = str(caught.value)
    assert "6 of 20 rows quarantined (30.0%)" in message and "allowed 5.0%" in message
    assert "empty_text 3, duplicate_id 2, null_field 1" in message
    assert "example ids: r0, r1, r2, r3, r4" in message and "max_quarantine_fraction" in message


def test_the_limit_itself_passes_and_selections_do_not_count() -> None:
    check_quarantine("s", 20, _quarantine(["empty_text"]), 0.05)  # exactly 5%
    check_quarantine("s", 0, _quarantine([]), 0.0)  # nothing read, nothing lost
    selected = _quarantine(["non_english_subset"] * 15 + ["empty_text"])
    check_quarantine("tulu3", 20, selected, 0.05, exempt=frozenset({"non_english_subset"}))
    with pytest.raises(QuarantineLimitError, match=r"2 of 20 rows .*example ids: r15, r16"):
        lost = _quarantine(["non_english_subset"] * 15 + ["empty_text"] * 2)
        check_quarantine("tulu3", 20, lost, 0.05, exempt=frozenset({"non_english_subset"}))


def test_the_recipes_own_selections_are_declared_by_their_sources() -> None:
    assert SOURCES["tulu3"].selections == {"non_english_subset"}
    assert SOURCES["hermes3"].selections == {"code_related"}
    assert all(not spec.selections for key, spec in SOURCES.items() if key not in {"tulu3", "hermes3"})


def test_every_fixture_source_passes_the_paper_guard(tmp_path: Path) -> None:
    """The fixtures follow the real layouts; their few defect rows stay under paper's 5%."""
    limit = load_preset("paper").data.max_quarantine_fraction
    for key, spec in SOURCES.items():
        counts = prepare_source(spec, str(FIXTURES / key), tmp_path / key, 2)
        quarantine = pq.read_table(tmp_path / key / "quarantine.parquet")
        check_quarantine(key, counts.read, quarantine, limit, exempt=spec.selections)


def test_a_source_over_the_limit_stops_its_stage_after_writing_its_counts(
    tmp_path: Path, pipeline_run: str
) -> None:
    parent = pipeline_run
    data = tmp_path / "data"
    (data / "openorca").mkdir(parents=True)
    rows = [{**ORCA, "id": f"x.{i}", "response": "" if i < 3 else "Paris."} for i in range(10)]
    (data / "openorca" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    preset = load_preset("tiny")
    settings = prepare.settings(preset, source="openorca").model_copy(
        update={"location": str(data / "openorca")}
    )
    out = tmp_path / "prepared"
    with pytest.raises(QuarantineLimitError, match=r"source openorca .*3 of 10 rows .*empty_text 3"):
        prepare.run(settings, out)
    counts = json.loads((out / "counts.json").read_text())
    assert (counts["read"], counts["kept"], counts["quarantined"]) == (10, 7, {"empty_text": 3})
    experiment = mlflow.get_run(parent).info.experiment_id
    (child,) = mlflow.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'", output_format="list"
    )
    assert child.info.status == "FAILED" and child.data.metrics["openorca.quarantined.empty_text"] == 3


def test_a_shard_over_the_limit_stops_but_the_judges_rejections_do_not_count(
    tmp_path: Path, pipeline_run: str
) -> None:
    preset = load_preset("tiny")
    base = judge.settings(preset)
    settings = base.model_copy(
        update={"quality": base.quality.model_copy(update={"max_quarantine_fraction": 0.1})}
    )
    prepared = tmp_path / "prepared"
    prepare_source(SOURCES["opus100"], str(FIXTURES / "opus100"), prepared, settings.num_shards)

    def failing(reason: str) -> ShardRunner:
        def run(records: pa.Table, work: Path) -> tuple[ShardResult, dict[str, float]]:
            def process(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
                bad = [
                    {"id": i, "reason": reason, "column": "translation"}
                    for i in batch.column("id").to_pylist()
                ]
                return batch.slice(0, 0), pa.Table.from_pylist(bad, schema=TRANSLATION_QUARANTINE_SCHEMA)

            schemas = (records.schema, TRANSLATION_QUARANTINE_SCHEMA)
            return process_shard(records, work, process, batch_size=8, schemas=schemas), {}

        return run

    def paths(name: str) -> ShardPaths:
        return ShardPaths(0, str(tmp_path / "model"), str(prepared), str(tmp_path / "out" / name))

    with pytest.raises(QuarantineLimitError, match=r"judge_filter shard 0: .*unreadable"):
        run_shard("judge_filter", "judge", settings, paths("a"), failing("unreadable"))
    counts = run_shard(
        "judge_filter-b", "judge", settings, paths("b"), failing("reject"), exempt=frozenset({"reject"})
    )
    assert counts.read == counts.quarantined > 0
