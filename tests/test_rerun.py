"""hala rerun: recompile a recorded run's exact preset and images, submit it (fake KFP, sqlite MLflow)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from hala import registry
from hala.config import load_preset, preset_file_hash
from hala.stages import run
from hala.stages.context import ENV_EXPERIMENT, ENV_RUN_ID
from hala_pipelines import kfp_client as ops
from hala_pipelines import rerun
from hala_pipelines.cli import _parser as hala_parser

DATA_IMAGE = "registry.example.com/hala-data@sha256:" + "a" * 64


class RecordingKfp:
    """Keeps what a submission sends; the package file is read while it exists."""

    def __init__(self) -> None:
        self.package = ""
        self.run: dict[str, Any] = {}

    def get_pipeline_id(self, name: str) -> str:
        return "pipe-1"

    def upload_pipeline_version(self, pipeline_package_path: str, **kwargs: Any) -> Any:
        self.package = Path(pipeline_package_path).read_text(encoding="utf-8")
        return SimpleNamespace(pipeline_version_id="ver-1")

    def create_experiment(self, name: str, namespace: str | None = None) -> Any:
        self.experiment = name
        return SimpleNamespace(experiment_id="exp-1")

    def run_pipeline(self, **kwargs: Any) -> Any:
        self.run = kwargs
        return SimpleNamespace(run_id="run-2")


@pytest.fixture(scope="module")
def _module_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # create the tables once (seconds on a busy machine)
    return uri


@pytest.fixture
def store(_module_store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _module_store)
    return _module_store


def _start(preset_json: str, run_name: str, file_hash: str, kfp_run_id: str) -> str:
    """The parent run as the pipeline's start stage opens it."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="hala-test-preset-"))
    (folder / run.PRESET_FILE).write_text(preset_json, encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_RUN_ID, kfp_run_id)
        env.setenv(ENV_EXPERIMENT, json.loads(preset_json)["tracking"]["experiment"])
        return run.start(str(folder), run_name, file_hash, {}, "")


def _recorded_run(preset_json: str, file_hash: str, commit: str = "c0ffee") -> str:
    """A parent run as the start stage writes it, plus what rerun needs if start does not write it yet."""
    run_id = _start(preset_json, "nightly-7", file_hash, "kfp-run-1")
    client = MlflowClient()
    run = client.get_run(run_id)
    if registry.PARAM_PRESET_JSON not in run.data.params and not client.list_artifacts(
        run_id, registry.ARTIFACT_PRESET_JSON
    ):
        client.log_text(run_id, preset_json, registry.ARTIFACT_PRESET_JSON)
    client.log_param(run_id, registry.PARAM_IMAGE_PREFIX + "data", DATA_IMAGE)
    client.set_tag(run_id, "hala.git_commit", commit)
    return run_id


def _parser() -> argparse.ArgumentParser:
    return hala_parser()


@pytest.mark.component  # compiles the whole pipeline, as test_compile does
def test_rerun_compiles_the_recorded_preset_byte_for_byte(
    store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The recorded preset differs from today's tiny.yaml: the rerun must use the record, not the file.
    recorded = load_preset("tiny").model_copy(update={"seed": 7}).to_json()
    file_hash = "f" * 64
    run_id = _recorded_run(recorded, file_hash, commit="c0ffee")
    fake = RecordingKfp()
    monkeypatch.setattr(ops, "connect", lambda conn: fake)
    monkeypatch.setenv("HALA_GIT_COMMIT", "deadbeef")
    monkeypatch.delenv("HALA_IMAGE_DATA", raising=False)

    args = _parser().parse_args(["rerun", run_id, "--host", "http://kfp.example", "--tracking-uri", store])
    assert args.func(args) == 0

    spec, _platform = yaml.safe_load_all(fake.package)
    fingerprint = hashlib.sha256(recorded.encode()).hexdigest()
    assert spec["pipelineInfo"]["description"].endswith(f"(compiled preset fingerprint {fingerprint})")
    assert spec["root"]["inputDefinitions"]["parameters"]["seed"]["defaultValue"] == 7
    assert "preset_json" not in fake.run["params"]  # the run's parameters keep the recorded defaults
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert DATA_IMAGE in images
    assert "HALA_IMAGE_DATA" not in os.environ  # the override applied to the compile only
    assert file_hash in fake.package  # the start task records the original preset file's hash
    assert fake.run["pipeline_id"] == "pipe-1" and fake.run["version_id"] == "ver-1"
    assert fake.run["job_name"].startswith("nightly-7-rerun-")
    assert fake.experiment == "hala-tiny"

    captured = capsys.readouterr()
    assert "was made from commit c0ffee, this checkout is deadbeef" in captured.err
    assert "http://kfp.example/#/runs/details/run-2" in captured.out


def test_no_warning_on_the_same_commit(store: str) -> None:
    recorded = load_preset("tiny").to_json()
    found = rerun.read_recorded_run(
        MlflowClient(store), _recorded_run(recorded, preset_file_hash("tiny"), "abc")
    )
    assert rerun.commit_warning(found, "abc") is None
    assert found.images == {"data": DATA_IMAGE}
    assert rerun.image_env(found.images) == {"HALA_IMAGE_DATA": DATA_IMAGE}
    assert found.preset_json == recorded
    assert found.preset_file_sha256 == preset_file_hash("tiny")


def test_a_run_without_a_recorded_preset_is_refused(store: str) -> None:
    client = MlflowClient(store)
    run = client.create_run(client.create_experiment("other-experiment"))
    with pytest.raises(rerun.RerunError, match=f"MLflow run {run.info.run_id} records no resolved preset"):
        rerun.read_recorded_run(client, run.info.run_id)
    with pytest.raises(rerun.RerunError, match="no MLflow run 0123"):
        rerun.read_recorded_run(client, "0123")


def test_an_altered_record_is_refused(store: str) -> None:
    recorded = load_preset("tiny").to_json()
    run_id = _start(recorded, "r", "", "kfp-run-2")
    client = MlflowClient(store)
    assert (
        client.get_run(run_id).data.params["preset_fingerprint"]
        == hashlib.sha256(recorded.encode()).hexdigest()
    )
    altered = recorded.replace('"seed": 42', '"seed": 43')
    assert altered != recorded
    client.log_param(run_id, registry.PARAM_PRESET_JSON, altered)
    with pytest.raises(rerun.RerunError, match="does not match its fingerprint"):
        rerun.read_recorded_run(client, run_id)
