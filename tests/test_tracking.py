"""hala.tracking's guards around MLflow's store."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from hala import tracking


def test_a_dataset_created_by_a_concurrent_run_is_linked_on_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's SQL store races two runs inserting one dataset (PostgreSQL: dataset_pk)."""
    calls: list[str] = []

    def log_input(dataset: object, context: str) -> None:
        calls.append(context)
        if len(calls) == 1:
            raise MlflowException('duplicate key value violates unique constraint "dataset_pk"')

    monkeypatch.setattr(mlflow, "log_input", log_input)
    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)
    tracking._log_input(object(), "source")
    assert calls == ["source", "source"]


def test_any_other_store_error_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def log_input(dataset: object, context: str) -> None:
        calls.append(context)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: run not found")

    monkeypatch.setattr(mlflow, "log_input", log_input)
    with pytest.raises(MlflowException, match="run not found"):
        tracking._log_input(object(), "source")
    assert calls == ["source"]
