"""MLflow tracking: one parent run per pipeline run, one nested run per stage.

With ``MLFLOW_TRACKING_URI`` unset, runs go to the sqlite file ``mlflow.db`` in the working folder
(no server needed); on the cluster the variable points at the tracking server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hala.errors import HalaError

TRACKED_PACKAGES = ("hala", "kfp", "mlflow", "datasets", "pyarrow", "transformers", "torch", "trl", "vllm")


def tracking_uri() -> str:
    """The tracking server from the environment, else ``sqlite:///<cwd>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def mask_uri(uri: str) -> str:
    """``uri`` with any password in it replaced by ``***`` (safe to print or log)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_store(uri: str, timeout_s: float = 10.0) -> str:
    """``uri`` once the store answers; a clear error within ``timeout_s`` otherwise.

    An http(s) server must answer ``GET /health`` (MLflow's own endpoint); a sqlite file's folder must
    exist (MLflow would otherwise create an empty store in a new place, or fail later with a
    traceback). MLflow's client retries an unreachable server for minutes; this fails in seconds.
    """
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme.startswith("sqlite"):
        folder = Path(uri.split(":///", 1)[-1]).parent
        if not folder.is_dir():
            raise HalaError(
                f"MLflow store {uri}: the folder {folder} does not exist; create it or fix the URI"
            )
        return uri
    if scheme not in {"http", "https"}:
        return uri
    parts = urllib.parse.urlsplit(uri)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")  # no credentials
    health = urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout_s) as reply:
            reply.read()
    except urllib.error.HTTPError:
        pass  # it answered (a proxy may guard /health): the server is there
    except (OSError, ValueError) as exc:
        raise HalaError(
            f"MLflow tracking server {mask_uri(uri)} does not answer ({exc}); check that it runs and "
            "that MLFLOW_TRACKING_URI (or --tracking-uri) names it, and the network path to it"
        ) from None
    return uri


def _client() -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient()


def registry_client() -> MlflowClient:
    """A client whose tracking and registry stores are both :func:`tracking_uri` (model versions, tags)."""
    uri = tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def git_commit() -> str:
    """The commit the code runs from: ``HALA_GIT_COMMIT`` (set in images) or ``git rev-parse``."""
    if os.environ.get("HALA_GIT_COMMIT"):
        return os.environ["HALA_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a run's results (absent ones are left out)."""
    versions = {}
    for name in TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


KFP_RUN_TAG = "hala.kfp_run_id"


def start_pipeline_run(experiment: str, run_name: str, params: dict[str, str], kfp_run_id: str) -> str:
    """Create the parent run (left RUNNING until :func:`finish_pipeline_run`); returns its id."""
    client = _client()
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    tags = {
        KFP_RUN_TAG: kfp_run_id,
        "hala.git_commit": git_commit(),
        **{f"hala.version.{k}": v for k, v in package_versions().items()},
    }
    run = client.create_run(experiment_id, run_name=run_name or None, tags=tags)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    return run.info.run_id


def kill_open_runs(experiment: str, run_name: str) -> list[str]:
    """End the RUNNING parent run named ``run_name`` and its RUNNING stage runs as KILLED; their ids.

    What an interrupted local run leaves behind (Ctrl-C or SIGTERM stops the tasks, not their runs).
    """
    client = _client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    running = "attributes.status = 'RUNNING'"
    name = run_name.replace("'", "\\'")
    parents = client.search_runs([found.experiment_id], f"attributes.run_name = '{name}' and {running}")
    killed = []
    for parent in parents:
        children = client.search_runs(
            [found.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and {running}"
        )
        for run in [*children, parent]:
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    return killed


def find_pipeline_run(experiment: str, kfp_run_id: str, client: MlflowClient | None = None) -> str | None:
    """The parent run of a KFP run (by its tag), or None when the pipeline failed before creating it.

    ``client`` reads another store than :func:`tracking_uri` (a local run's own ``mlflow.db``).
    """
    client = client or _client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`{KFP_RUN_TAG}` = '{kfp_run_id}'", max_results=1
    )
    return runs[0].info.run_id if runs else None


def finish_pipeline_run(experiment: str, kfp_run_id: str, status: str) -> str | None:
    """End the parent run of a KFP run, and every stage run still RUNNING under it, with ``status``.

    A task killed with its pod (a failed node, a cancelled run) never ends its own stage run.
    Returns the parent's id, or None when the pipeline failed before creating it.
    """
    run_id = find_pipeline_run(experiment, kfp_run_id)
    if run_id is None:
        return None
    client = _client()
    experiment_id = client.get_run(run_id).info.experiment_id
    open_runs = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'"
    )
    for child in open_runs:
        client.set_terminated(child.info.run_id, status=status)
    client.set_terminated(run_id, status=status)
    return run_id


@contextlib.contextmanager
def stage_run(parent_run_id: str, stage: str, kfp_run_id: str = "") -> Iterator[mlflow.ActiveRun]:
    """A nested run for one stage under the pipeline's parent run (tagged with the stage and KFP run)."""
    client = _client()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    tags = {"hala.stage": stage, "hala.pipeline_run": kfp_run_id}
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=stage, parent_run_id=parent_run_id, tags=tags
    ) as run:
        yield run


def log_input(dataset: Any, context: str, attempts: int = 4) -> None:
    """``mlflow.log_input``, retried when another run created the same dataset at the same moment.

    MLflow's SQL store checks for the dataset, then inserts it: two runs logging one dataset (same
    name and digest, same experiment) at once race, and the loser gets a unique-key violation
    (``dataset_pk`` on PostgreSQL). The dataset exists by then, so a retry links it.
    """
    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as exc:
            duplicate = "dataset_pk" in str(exc) or "UNIQUE constraint failed: datasets" in str(exc)
            if not duplicate or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
