"""Everything the run report shows, read from MLflow alone: the parent run, its stage runs, the registry.

:func:`gather` reads one pipeline run: the parent run (params, tags, the ``preset.json`` artifact), every
nested stage run (status, start and end, metrics, params, tags; every attempt of a retried task), the
metric histories of each SFT run, a few Table 2 items per system, and the model versions registered
by the run with their aliases. A past run's page can be rebuilt from the tracking store at any time.
"""

from __future__ import annotations

import json
import tempfile
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from hala import registry
from hala.config import Preset
from hala.errors import HalaError
from hala.tracking import mask_uri

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

TAG_REUSED_FROM = "hala.reused_from"  # a stage run that reused the outputs of an earlier run (its id)
SFT_CURVES = ("train.loss", "train.learning_rate", "eval.loss")  # hala.training.mlflow_callback.LOGGED
SAMPLE_ITEMS = 3  # Table 2 items shown per system
PAGE = 1000


@dataclass(frozen=True)
class RunInfo:
    """One MLflow run as the report needs it (times in ms since the epoch; ``end_ms`` None while open)."""

    run_id: str
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]

    @property
    def seconds(self) -> float | None:
        """Wall time from start to end, or None while the run is open."""
        if self.start_ms is None or self.end_ms is None:
            return None
        return max(0.0, (self.end_ms - self.start_ms) / 1000)

    @property
    def reused_from(self) -> str | None:
        """The run whose outputs this stage reused (tag ``hala.reused_from``), or None."""
        return self.tags.get(TAG_REUSED_FROM) or None


@dataclass(frozen=True)
class VersionInfo:
    """A model version registered by the run, with its aliases and tags (gate verdict among them)."""

    name: str
    version: str
    aliases: list[str]
    tags: dict[str, str]


@dataclass
class Snapshot:
    """One pipeline run read from MLflow."""

    parent: RunInfo
    experiment_id: str
    tracking_uri: str
    preset: Preset | None
    preset_note: str
    stages: list[RunInfo]  # every attempt, oldest first
    histories: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    versions: list[VersionInfo] = field(default_factory=list)
    samples: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def latest(self) -> dict[str, RunInfo]:
        """The newest attempt of each stage, by stage name."""
        return {run.name: run for run in self.stages}

    def ui_link(self, run_id: str) -> str | None:
        """The MLflow UI address of a run when the store is a server, else None."""
        return run_link(self.tracking_uri, self.experiment_id, run_id)


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """``<server>/#/experiments/<id>/runs/<run>`` for an http(s) store (no credentials), else None."""
    parts = urllib.parse.urlsplit(tracking_uri)
    if parts.scheme not in {"http", "https"}:
        return None
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    base = urllib.parse.urlunsplit(parts._replace(netloc=netloc, query="", fragment="")).rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def run_info(run: Run) -> RunInfo:
    """The fields of an MLflow run the report reads."""
    return RunInfo(
        run_id=run.info.run_id,
        name=run.info.run_name or run.data.tags.get("mlflow.runName", run.info.run_id),
        status=run.info.status,
        start_ms=run.info.start_time,
        end_ms=run.info.end_time,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags=dict(run.data.tags),
    )


def stage_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[RunInfo]:
    """Every nested run of ``parent_run_id`` (all pages), oldest first."""
    found: list[RunInfo] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=PAGE,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        found += [run_info(run) for run in page]
        token = page.token
        if not token:
            return sorted(found, key=lambda r: (r.start_ms or 0, r.name))


def read_preset(client: MlflowClient, parent: RunInfo, given: Preset | None) -> tuple[Preset | None, str]:
    """The run's resolved preset (``given``, else its ``preset.json`` artifact) and a note on where from."""
    if given is not None:
        return given, "given by the caller"
    text = _artifact_text(client, parent.run_id, registry.ARTIFACT_PRESET_JSON)
    where = f"artifact {registry.ARTIFACT_PRESET_JSON}"
    if text is None and registry.PARAM_PRESET_JSON in parent.params:
        text, where = parent.params[registry.PARAM_PRESET_JSON], f"param {registry.PARAM_PRESET_JSON}"
    if text is None:
        return None, "the run has no preset.json artifact: GPUs and prices are unknown"
    try:
        return Preset.model_validate(json.loads(text)), f"the run's {where}"
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        return None, f"the run's {where} does not load with this version of hala ({first})"


def _artifact_text(client: MlflowClient, run_id: str, path: str) -> str | None:
    """The text of one run artifact, or None when it is absent."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except (MlflowException, OSError):
            return None
        return Path(local).read_text(encoding="utf-8") if Path(local).is_file() else None


def metric_histories(
    client: MlflowClient, run: RunInfo, keys: Iterable[str]
) -> dict[str, list[tuple[int, float]]]:
    """The (step, value) history of each of ``keys`` the run logged, by step."""
    histories = {}
    for key in keys:
        if key in run.metrics:
            points = client.get_metric_history(run.run_id, key)
            histories[key] = sorted((int(m.step), float(m.value)) for m in points)
    return histories


def table2_samples(client: MlflowClient, run: RunInfo, limit: int = SAMPLE_ITEMS) -> list[dict[str, str]]:
    """The first ``limit`` items (source, reference, hypothesis) scored by a ``translation_eval-*`` run."""
    system = run.name.split("-", 1)[-1]
    text = _artifact_text(client, run.run_id, f"translation/{system}/items.jsonl")
    if not text:
        return []
    rows = [json.loads(line) for line in text.splitlines()[:limit] if line.strip()]
    keys = ("source", "reference", "hypothesis")
    return [{k: str(row.get(k) or "") for k in keys} for row in rows]


def registered_versions(
    client: MlflowClient, parent_run_id: str, reused_from: Sequence[str] = ()
) -> list[VersionInfo]:
    """The model versions of this run, with their aliases.

    Those it registered (tagged ``hala.mlflow_run`` with its parent run), and those an earlier run
    registered whose register stage this run reused from KFP's cache (``reused_from``: the
    producing register runs).
    """
    filters = [f"tags.`{registry.TAG_MLFLOW_RUN}` = '{parent_run_id}'"]
    filters += [f"run_id = '{run_id}'" for run_id in reused_from]
    found = {(v.name, int(v.version)): v for f in filters for v in client.search_model_versions(f)}
    versions = []
    for _, item in sorted(found.items()):
        full = client.get_model_version(item.name, item.version)  # search results carry no aliases
        versions.append(VersionInfo(item.name, str(item.version), list(full.aliases), dict(full.tags)))
    return versions


def _producer(client: MlflowClient, run: RunInfo) -> RunInfo:
    """The run that did a stage's work: the stage run itself, or the run a reused stage points at."""
    from mlflow.exceptions import MlflowException

    if run.reused_from is None:
        return run
    try:
        return run_info(client.get_run(run.reused_from))
    except MlflowException:
        return run  # the producing run was deleted: show what the link holds


def gather(parent_run_id: str, client: MlflowClient, preset: Preset | None = None) -> Snapshot:
    """Read the pipeline run ``parent_run_id`` and everything under it from MLflow."""
    from mlflow.exceptions import MlflowException

    try:
        parent_run = client.get_run(parent_run_id)
    except MlflowException as exc:
        raise HalaError(
            f"no MLflow run {parent_run_id} in {mask_uri(client.tracking_uri)} ({exc.error_code}); "
            "pass the parent run id of a pipeline run (hala run prints it; the KFP run's MLflow link)"
        ) from None
    parent = run_info(parent_run)
    resolved, note = read_preset(client, parent, preset)
    stages = stage_runs(client, parent_run.info.experiment_id, parent_run_id)
    snapshot = Snapshot(parent, parent_run.info.experiment_id, client.tracking_uri, resolved, note, stages)
    for name, run in snapshot.latest().items():
        source = _producer(client, run)  # a reused stage's curves and files are its producer's
        if name.startswith("sft-"):
            snapshot.histories[name] = metric_histories(client, source, SFT_CURVES)
        elif name.startswith("translation_eval-") and run.status == "FINISHED":
            snapshot.samples[name.split("-", 1)[1]] = table2_samples(client, source)
    reused = [
        r.reused_from for n, r in snapshot.latest().items() if n.startswith("register-") and r.reused_from
    ]
    snapshot.versions = registered_versions(client, parent_run_id, reused)
    return snapshot
