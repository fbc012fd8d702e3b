"""What every stage shares: the pipeline run it belongs to, its MLflow stage run, its output records.

A task learns which pipeline run it is part of from its environment, never from a task input, so
that a task's inputs (and so KFP's cache key) are only what changes its outputs:

- ``HALA_RUN_ID``: the KFP run id. On the cluster it comes from the pod's ``pipeline/runid`` label
  through the downward API (the label the KFP backend itself checks to tie a pod to its run:
  kubeflow/pipelines ``backend/src/apiserver/resource/resource_manager.go`` ``readRunLogFromPod``);
  ``hala run`` sets it for local runs.
- ``HALA_EXPERIMENT``: the preset's MLflow experiment (set on every task at compile time).
- ``HALA_WORK_ROOT``: where durable work folders live, when set (``hala run``); otherwise the
  stage's settings name the work volume's mount point.

Every stage output folder gets a record file (:data:`RECORD`) naming the MLflow run that produced
it and the runs that produced everything upstream of it (its lineage). A cached task does not run,
so when a later task of a rerun opens its stage, the producing runs in its inputs' lineage that
belong to an earlier pipeline run are linked under the current parent run as *reused* stage runs:
their figures copied, with a link to the run that produced them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hala.errors import HalaError

if TYPE_CHECKING:  # mlflow takes seconds to import: a stage's settings never need it, only its run
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

RECORD = "hala-stage.json"
ENV_RUN_ID, ENV_EXPERIMENT, ENV_WORK_ROOT = "HALA_RUN_ID", "HALA_EXPERIMENT", "HALA_WORK_ROOT"
TAG_STAGE = "hala.stage"
TAG_REUSED_FROM = "hala.reused_from"  # the producing run of a reused stage
TAG_REUSED_FROM_PIPELINE = "hala.reused_from_pipeline"  # the KFP run it was produced in
TAG_PARENT_METRICS = "hala.parent_metrics"  # JSON list: the stage's metrics also on the parent run


@dataclass(frozen=True)
class RunContext:
    """The pipeline run a task belongs to."""

    run_id: str
    experiment: str


def run_context() -> RunContext:
    """The pipeline run of this process, from ``HALA_RUN_ID`` and ``HALA_EXPERIMENT``."""
    run_id, experiment = os.environ.get(ENV_RUN_ID, ""), os.environ.get(ENV_EXPERIMENT, "")
    if not run_id or not experiment:
        raise HalaError(
            f"{ENV_RUN_ID} and {ENV_EXPERIMENT} must name the pipeline run and its MLflow experiment "
            f"(got {run_id!r}, {experiment!r}): the compiled pipeline sets them on every task, "
            "`hala run` sets them locally; set both to run a stage by hand"
        )
    return RunContext(run_id, experiment)


def parent_run(context: RunContext) -> str:
    """The parent MLflow run of the pipeline run (created by its start task)."""
    from hala import tracking

    found = tracking.find_pipeline_run(context.experiment, context.run_id)
    if found is None:
        raise HalaError(
            f"no MLflow run tagged {tracking.KFP_RUN_TAG}={context.run_id} in experiment "
            f"{context.experiment!r}: the pipeline's start task creates it before any stage runs"
        )
    return found


@dataclass(frozen=True)
class StageRecord:
    """Who produced a stage output: the stage, its MLflow run, its pipeline run, and its lineage."""

    stage: str
    run_id: str
    pipeline_run: str
    lineage: dict[str, str] = field(default_factory=dict)  # producing run id -> stage, self included


def read_record(folder: str | Path) -> StageRecord | None:
    """The record of a stage output folder (None for a folder no stage produced, e.g. a test fixture)."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    return StageRecord(**json.loads(path.read_text(encoding="utf-8")))


def input_lineage(inputs: Sequence[str | Path]) -> dict[str, str]:
    """The union of the lineages of the input folders."""
    lineage: dict[str, str] = {}
    for folder in inputs:
        record = read_record(folder)
        if record is not None:
            lineage |= record.lineage
    return lineage


def work_key(settings_json: str, inputs: Sequence[str | Path]) -> str:
    """A key for a task's durable work folder: equal for a retry and for a rerun with the same inputs.

    It hashes the task's settings and the runs that produced its inputs (not their paths, which a
    cached upstream task keeps): a retried or re-run task finds the parts an earlier attempt wrote.
    """
    digest = hashlib.sha256(settings_json.encode())
    for folder in inputs:
        record = read_record(folder)
        digest.update(b"\0" + (record.run_id if record else str(Path(folder).resolve())).encode())
    return digest.hexdigest()[:16]


def work_root(configured: str) -> Path:
    """``HALA_WORK_ROOT`` when set (local runs), else the work volume's mount point from the settings."""
    return Path(os.environ.get(ENV_WORK_ROOT) or configured)


@dataclass
class Stage:
    """An open stage: its MLflow run under the pipeline's parent run."""

    name: str
    run_id: str
    parent_run_id: str
    context: RunContext
    lineage: dict[str, str]
    parent_metrics: list[str] = field(default_factory=list)

    def log_metrics(self, metrics: Mapping[str, float], *, on_parent: bool = False) -> None:
        """Log numbers on the stage run; ``on_parent`` also logs them on the pipeline's parent run."""
        import mlflow

        values = {k: float(v) for k, v in metrics.items()}
        mlflow.log_metrics(values)
        if on_parent:
            _log_batch(self.parent_run_id, values)
            self.parent_metrics += sorted(values)
            mlflow.set_tag(TAG_PARENT_METRICS, json.dumps(self.parent_metrics))

    def record(self) -> StageRecord:
        """The record this stage writes into its outputs."""
        lineage = {**self.lineage, self.run_id: self.name}
        return StageRecord(self.name, self.run_id, self.context.run_id, lineage)


def write_record(stage: Stage, folder: str | Path) -> None:
    """Mark ``folder`` as produced by ``stage`` (what a later task reads to link reused stages)."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    record = stage.record()
    payload = {
        "stage": record.stage,
        "run_id": record.run_id,
        "pipeline_run": record.pipeline_run,
        "lineage": record.lineage,
    }
    (path / RECORD).write_text(json.dumps(payload, sort_keys=True) + "\n", encoding="utf-8")


@contextlib.contextmanager
def open_stage(
    name: str, inputs: Sequence[str | Path] = (), outputs: Sequence[str | Path] = ()
) -> Iterator[Stage]:
    """Run a stage as a nested MLflow run of the pipeline run; records go into ``outputs`` on success.

    Before the stage starts, every run in its inputs' lineage that belongs to an earlier pipeline
    run (a stage KFP's cache reused) is linked under the current parent run.
    """
    from hala import tracking

    context = run_context()
    parent = parent_run(context)
    lineage = input_lineage(inputs)
    link_reused(parent, context, lineage)
    with tracking.stage_run(parent, name, context.run_id) as run:
        stage = Stage(name, run.info.run_id, parent, context, lineage)
        yield stage
        for folder in outputs:
            write_record(stage, folder)


def _log_batch(run_id: str, metrics: Mapping[str, float]) -> None:
    from mlflow.entities import Metric

    from hala import tracking

    now = int(time.time() * 1000)
    tracking.registry_client().log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])


def _children(client: MlflowClient, experiment_id: str, parent: str) -> list[Run]:
    return client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent}'", max_results=50000)


def link_reused(parent: str, context: RunContext, lineage: Mapping[str, str]) -> list[str]:
    """Link every producing run of ``lineage`` that is not a stage of ``parent``; the link run ids.

    A link is a finished nested run named after the stage, tagged with the run it reuses and that
    run's pipeline run, holding its metrics (and the metrics it logged on its own parent). Two tasks
    may link the same run at once: the duplicate with the larger run id deletes itself.
    """
    if not lineage:
        return []
    from hala import tracking

    client = tracking.registry_client()
    experiment_id = client.get_run(parent).info.experiment_id
    present: set[str] = set()
    for child in _children(client, experiment_id, parent):
        present |= {child.info.run_id, child.data.tags.get(TAG_REUSED_FROM, "")}
    links = []
    for run_id, stage in sorted(lineage.items()):
        if run_id not in present:
            links.append(_link(client, experiment_id, parent, run_id, stage))
    return [link for link in links if _dedupe(client, experiment_id, parent, link)]


def _link(client: MlflowClient, experiment_id: str, parent: str, run_id: str, stage: str) -> str:
    from mlflow.entities import Metric, RunTag

    producer = client.get_run(run_id)
    tags = {
        "mlflow.parentRunId": parent,
        TAG_STAGE: stage,
        TAG_REUSED_FROM: run_id,
        TAG_REUSED_FROM_PIPELINE: producer.data.tags.get("hala.pipeline_run", ""),
        "mlflow.note.content": f"Reused from run {run_id} (KFP's cache): these are its figures.",
    }
    link = client.create_run(experiment_id, run_name=stage, tags=tags)
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in producer.data.metrics.items()]
    client.log_batch(link.info.run_id, metrics=metrics, tags=[RunTag("hala.reused", "true")])
    mirrored = json.loads(producer.data.tags.get(TAG_PARENT_METRICS, "[]"))
    if mirrored:
        _log_batch(parent, {k: producer.data.metrics[k] for k in mirrored if k in producer.data.metrics})
    client.set_terminated(link.info.run_id, status="FINISHED")
    return str(link.info.run_id)


def _dedupe(client: MlflowClient, experiment_id: str, parent: str, link: str) -> bool:
    """Keep ``link`` unless another link of the same run with a smaller id exists (then delete it)."""
    reused = client.get_run(link).data.tags[TAG_REUSED_FROM]
    same = [
        r.info.run_id
        for r in _children(client, experiment_id, parent)
        if r.data.tags.get(TAG_REUSED_FROM) == reused
    ]
    if min(same) != link:
        client.delete_run(link)
        return False
    return True


def log_kfp_metrics(output: Any, values: Mapping[str, float]) -> None:
    """Log ``values`` on a KFP ``Metrics`` output (``output.log_metric``) and write them to its file.

    KFP keeps metrics in the output's metadata and writes no file; kfp.local's cache treats an output
    whose file is missing as lost and re-runs the task, so the file is written too.
    """
    for name, value in values.items():
        output.log_metric(name, float(value))
    Path(output.path).parent.mkdir(parents=True, exist_ok=True)
    Path(output.path).write_text(json.dumps(dict(values), sort_keys=True) + "\n", encoding="utf-8")
