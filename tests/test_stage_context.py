"""How a stage opens: its pipeline run from the environment, records in its outputs, reused stages linked."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from hala import tracking
from hala.errors import HalaError
from hala.stages import run as run_stage
from hala.stages.context import (
    ENV_RUN_ID,
    RECORD,
    log_kfp_metrics,
    open_stage,
    read_record,
    work_key,
    work_root,
)


def _client() -> MlflowClient:
    return tracking.registry_client()


def _children(parent: str) -> list:
    client = _client()
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")


def test_a_stage_needs_its_pipeline_run_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_RUN_ID, raising=False)
    with (
        pytest.raises(HalaError, match="HALA_RUN_ID and HALA_EXPERIMENT must name the pipeline run"),
        open_stage("prepare-x"),
    ):
        pass


def test_a_stage_writes_its_record_and_its_lineage_into_its_outputs(
    tmp_path: Path, pipeline_run: str
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    with open_stage("prepare-x", outputs=[first]) as up:
        up.log_metrics({"x.read": 3}, on_parent=True)
    with open_stage("quantize", inputs=[first], outputs=[second]) as down:
        pass
    record = read_record(second)
    assert record is not None and record.stage == "quantize" and record.run_id == down.run_id
    assert record.lineage == {up.run_id: "prepare-x", down.run_id: "quantize"}
    assert record.pipeline_run == "kfp-test-run"
    assert _client().get_run(pipeline_run).data.metrics["x.read"] == 3  # on the parent too
    assert read_record(tmp_path) is None  # a folder no stage produced (a fixture)


def test_a_failed_stage_writes_no_record(tmp_path: Path, pipeline_run: str) -> None:
    with pytest.raises(RuntimeError), open_stage("prepare-x", outputs=[tmp_path / "out"]):
        raise RuntimeError("broken")
    assert not (tmp_path / "out" / RECORD).exists()
    (run,) = _children(pipeline_run)
    assert run.info.status == "FAILED" and run.data.tags["hala.stage"] == "prepare-x"


def test_a_work_key_is_the_same_for_a_retry_and_changes_with_settings_or_inputs(
    tmp_path: Path, pipeline_run: str
) -> None:
    produced, again = tmp_path / "p1", tmp_path / "p2"
    with open_stage("prepare-x", outputs=[produced]):
        pass
    with open_stage("prepare-x", outputs=[again]):
        pass
    key = work_key('{"a": 1}', [produced, tmp_path / "fixture"])
    assert key == work_key('{"a": 1}', [produced, tmp_path / "fixture"])
    assert key != work_key('{"a": 2}', [produced, tmp_path / "fixture"])
    assert key != work_key('{"a": 1}', [again, tmp_path / "fixture"])  # produced by another run
    assert work_root("/hala-work") == tmp_path / "work"  # HALA_WORK_ROOT (set by hala run) wins


def test_a_rerun_links_the_stages_it_reused_once_with_their_figures(
    tmp_path: Path, pipeline_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared, quantized = tmp_path / "prepared", tmp_path / "quantized"
    with open_stage("prepare-x", outputs=[prepared]) as prepare:
        prepare.log_metrics({"x.read": 30, "x.kept": 29}, on_parent=True)
    with open_stage("quantize", inputs=[prepared], outputs=[quantized]) as quantize:
        quantize.log_metrics({"quant.chrf_fp8": 0.5})

    # A second pipeline run whose first two stages came from the cache: a later stage reads their output.
    monkeypatch.setenv(ENV_RUN_ID, "kfp-rerun")
    rerun = tracking.start_pipeline_run("hala-test", "rerun", {}, "kfp-rerun")
    with open_stage("teacher_translate-0", inputs=[quantized]):
        pass
    with open_stage("teacher_translate-1", inputs=[quantized]):  # a second reader links nothing again
        pass
    stages = {r.info.run_name: r for r in _children(rerun)}
    assert set(stages) == {"prepare-x", "quantize", "teacher_translate-0", "teacher_translate-1"}
    assert stages["quantize"].data.tags["hala.reused_from"] == quantize.run_id
    assert stages["quantize"].data.tags["hala.reused_from_pipeline"] == "kfp-test-run"
    assert stages["quantize"].data.metrics == {"quant.chrf_fp8": 0.5}
    assert stages["prepare-x"].data.metrics == {"x.read": 30, "x.kept": 29}
    assert stages["quantize"].info.status == "FINISHED"
    assert "hala.reused_from" not in stages["teacher_translate-0"].data.tags
    assert _client().get_run(rerun).data.metrics == {"x.read": 30, "x.kept": 29}  # the parent's counts too


def test_the_exit_handler_closes_every_run_left_open(tmp_path: Path, pipeline_run: str) -> None:
    client = _client()
    experiment = client.get_run(pipeline_run).info.experiment_id
    client.create_run(
        experiment, run_name="sft-tiny", tags={"mlflow.parentRunId": pipeline_run}
    )  # pod killed
    assert run_stage.finish("CANCELLED") == pipeline_run
    assert client.get_run(pipeline_run).info.status == "KILLED"
    assert {r.info.status for r in _children(pipeline_run)} == {"KILLED"}
    assert [run_stage.final_status(s) for s in ("SUCCEEDED", "FAILED", "CANCELED")] == [
        "FINISHED",
        "FAILED",
        "KILLED",
    ]


def test_kfp_metrics_are_also_written_to_the_outputs_file(tmp_path: Path) -> None:
    """kfp.local's cache takes an output whose file is missing for lost and runs the task again."""
    logged: dict[str, float] = {}
    output = SimpleNamespace(path=str(tmp_path / "metrics"), log_metric=logged.__setitem__)
    log_kfp_metrics(output, {"teacher.chrf": 61.5})
    assert logged == {"teacher.chrf": 61.5}
    assert json.loads((tmp_path / "metrics").read_text()) == {"teacher.chrf": 61.5}
