"""hala.tracking's guards around MLflow's store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from hala import tracking
from hala.errors import HalaError


def test_a_dataset_created_by_a_concurrent_run_is_linked_on_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's SQL store races two runs inserting one dataset (PostgreSQL: dataset_pk)."""
    calls: list[str] = []

    def log_input(dataset: object, context: str) -> None:
        calls.append(context)
        if len(calls) == 1:
            raise MlflowException('duplicate key value violates unique constraint "dataset_pk"')

    monkeypatch.setattr(mlflow, "log_input", log_input)
    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)
    tracking.log_input(object(), "source")
    assert calls == ["source", "source"]


def test_any_other_store_error_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def log_input(dataset: object, context: str) -> None:
        calls.append(context)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: run not found")

    monkeypatch.setattr(mlflow, "log_input", log_input)
    with pytest.raises(MlflowException, match="run not found"):
        tracking.log_input(object(), "source")
    assert calls == ["source"]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_passwords_are_masked_in_uris() -> None:
    assert (
        tracking.mask_uri("https://alice:s3cret@mlflow.example:5000/x")
        == "https://alice:***@mlflow.example:5000/x"
    )
    assert (
        tracking.mask_uri("postgresql+psycopg2://mlflow:pw@db/mlflow")
        == "postgresql+psycopg2://mlflow:***@db/mlflow"
    )
    assert tracking.mask_uri("http://mlflow:5000") == "http://mlflow:5000"


def test_an_unreachable_server_fails_in_seconds_naming_it_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import time

    from hala.cli import main

    uri = f"http://admin:s3cret@127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    assert main(["models", "--tracking-uri", uri]) == 2
    assert time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert "MLflow tracking server http://admin:***@127.0.0.1:" in err and "does not answer" in err
    assert "s3cret" not in err and "Traceback" not in err


def test_a_sqlite_store_in_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HalaError, match=r"the folder .*nowhere does not exist"):
        tracking.check_store(f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}")
    assert tracking.check_store(f"sqlite:///{tmp_path / 'mlflow.db'}").endswith("mlflow.db")


def test_an_interrupted_local_run_ends_its_mlflow_runs_as_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM (or Ctrl-C) during `hala run`: the parent and every open stage run end KILLED."""
    import os
    import signal

    from kfp.pipeline_spec import pipeline_spec_pb2

    from hala_pipelines import local

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PATH", os.environ["PATH"])
    for name in ("HALA_RUN_ID", "HALA_WORK_ROOT"):
        monkeypatch.delenv(name, raising=False)  # run_local sets them for its tasks

    class Interrupted:
        pipeline_spec = pipeline_spec_pb2.PipelineSpec()

        def __call__(self, run_name: str) -> None:
            parent = tracking.start_pipeline_run("hala-tiny", run_name, {}, "kfp-local")
            tracking.start_pipeline_run("hala-tiny", "another-run", {}, "kfp-other")
            client = mlflow.tracking.MlflowClient(tracking.tracking_uri())
            experiment = client.get_run(parent).info.experiment_id
            # A task's stage run, open when its process is stopped.
            client.create_run(experiment, run_name="prepare-openorca", tags={"mlflow.parentRunId": parent})
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(local, "build_pipeline", lambda preset, fingerprint: Interrupted())
    with pytest.raises(KeyboardInterrupt):
        local.run_local("tiny", tmp_path / "runs", run_name="stopped")
    client = mlflow.tracking.MlflowClient(tracking.tracking_uri())
    experiment = client.get_experiment_by_name("hala-tiny").experiment_id
    statuses = {r.info.run_name: r.info.status for r in client.search_runs([experiment])}
    assert statuses["stopped"] == statuses["prepare-openorca"] == "KILLED"
    assert statuses["another-run"] == "RUNNING"  # another run of the experiment is left alone
    assert signal.getsignal(signal.SIGTERM) is not local._interrupt  # the handler is put back
