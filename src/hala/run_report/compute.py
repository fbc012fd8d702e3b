"""Compute used per stage: wall time x GPUs = GPU-hours, priced per pool; the same figures as metrics.

Wall time is each stage run's start to end in MLflow (every attempt of a retried task counts, a reused
stage counts only its own short run); GPUs are where the preset places the stage
(:func:`hala.run_report.layout.placement`); the price of a GPU-hour per pool is the preset's
``prices.per_gpu_hour``. Pod scheduling, image pulls and the tasks that open no MLflow run (model
fetches, corpus assembly) are not timed, so the figures are a lower bound of what the cluster billed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hala import reference
from hala.config import Preset
from hala.run_report.gather import RunInfo
from hala.run_report.layout import CATEGORIES, category, expected_stages, placement

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

NOT_RUN = "NOT RUN"
_SHARD = re.compile(r"^(teacher_translate|judge_filter|corpus_translate-[^-]+)-\d+$")


@dataclass(frozen=True)
class StageCompute:
    """One stage of the run: its status, attempts, wall time, placement, GPU-hours and cost."""

    name: str
    category: str
    status: str  # the newest attempt's MLflow status, or NOT RUN
    attempts: int
    seconds: float  # closed attempts, added up
    open_attempts: int  # attempts still RUNNING (not timed)
    pool: str | None  # None when the preset is unknown
    gpus: int | None
    price: float | None  # per GPU-hour on the pool
    reused_from: str | None
    run_id: str | None

    @property
    def gpu_hours(self) -> float | None:
        """Wall hours x GPUs (None when the GPUs are unknown)."""
        return None if self.gpus is None else self.seconds / 3600 * self.gpus

    @property
    def cost(self) -> float | None:
        """GPU-hours x price; 0 without GPU-hours; None when GPU-hours have no price."""
        hours = self.gpu_hours
        if hours is None:
            return None
        if hours == 0:
            return 0.0
        return None if self.price is None else hours * self.price


def group_of(name: str) -> str:
    """The group a stage is shown in: a shard's stage without its index, other stages themselves."""
    found = _SHARD.match(name)
    return found.group(1) if found else name


def _price(preset: Preset, pool: str) -> float | None:
    """The preset's price of one GPU-hour on ``pool``, or None when it sets none."""
    prices = {str(k): v for k, v in preset.prices.per_gpu_hour.items()}
    return prices.get(pool)


def stage_compute(stages: Iterable[RunInfo], preset: Preset | None) -> list[StageCompute]:
    """One row per stage: the preset's expected stages in pipeline order (run or not), then any others."""
    attempts: dict[str, list[RunInfo]] = {}
    for run in stages:
        attempts.setdefault(run.name, []).append(run)
    names = expected_stages(preset) if preset else []
    names += [n for n in attempts if n not in names]
    rows = []
    for name in names:
        runs = attempts.get(name, [])
        where = placement(name, preset) if preset else None
        price = _price(preset, where.pool) if preset and where else None
        rows.append(
            StageCompute(
                name=name,
                category=category(name),
                status=runs[-1].status if runs else NOT_RUN,
                attempts=len(runs),
                seconds=sum(r.seconds or 0.0 for r in runs),
                open_attempts=sum(r.seconds is None for r in runs),
                pool=where.pool if where else None,
                gpus=where.gpus if where else None,
                price=price,
                reused_from=runs[-1].reused_from if runs else None,
                run_id=runs[-1].run_id if runs else None,
            )
        )
    return rows


@dataclass(frozen=True)
class Totals:
    """Added-up compute of a set of stages; ``cost`` leaves out GPU-hours without a price."""

    wall_hours: float
    gpu_hours: float | None
    cost: float | None
    unpriced_gpu_hours: float


def totals(rows: Iterable[StageCompute]) -> Totals:
    """Wall hours, GPU-hours and cost of ``rows`` (GPU-hours None when any row's GPUs are unknown)."""
    rows = list(rows)
    known = all(r.gpus is not None for r in rows)
    gpu_hours = sum(r.gpu_hours or 0.0 for r in rows) if known else None
    unpriced = sum(r.gpu_hours or 0.0 for r in rows if r.cost is None)
    priced = [r.cost for r in rows if r.cost is not None]
    return Totals(sum(r.seconds for r in rows) / 3600, gpu_hours, sum(priced) if known else None, unpriced)


def by_category(rows: list[StageCompute]) -> dict[str, Totals]:
    """Totals per cost category (translation, training, evaluation, other) and ``total``."""
    found = {c: totals(r for r in rows if r.category == c) for c in CATEGORIES}
    return found | {"total": totals(rows)}


def by_group(rows: list[StageCompute]) -> dict[str, list[StageCompute]]:
    """Rows by display group (the shards of one stage together), in pipeline order."""
    groups: dict[str, list[StageCompute]] = {}
    for row in rows:
        groups.setdefault(group_of(row.name), []).append(row)
    return groups


def compute_metrics(rows: list[StageCompute]) -> dict[str, float]:
    """The figures as parent-run metrics: ``compute.<category|total>.*`` and ``compute.group.<group>.*``."""
    metrics: dict[str, float] = {}

    def put(prefix: str, t: Totals) -> None:
        metrics[f"{prefix}.wall_hours"] = t.wall_hours
        if t.gpu_hours is not None:
            metrics[f"{prefix}.gpu_hours"] = t.gpu_hours
        if t.cost is not None and not t.unpriced_gpu_hours:
            metrics[f"{prefix}.cost_usd"] = t.cost

    for name, t in by_category(rows).items():
        put(f"compute.{name}", t)
    for group, members in by_group(rows).items():
        put(f"compute.group.{group}", totals(members))
    metrics["compute.report.training_cost_usd"] = float(reference.TRAINING_COST_USD)
    metrics["compute.report.translation_cost_usd"] = float(reference.TRANSLATION_COST_USD)
    return metrics


def log_compute_metrics(
    parent_run_id: str, client: MlflowClient, preset: Preset | None = None
) -> dict[str, float]:
    """Compute the run's compute and cost figures from MLflow and log them on the parent run; returns them.

    ``preset`` defaults to the run's ``preset.json`` artifact. Call it from the pipeline's last task,
    after every other stage has ended (a stage still running is not timed).
    """
    from mlflow.entities import Metric

    from hala.run_report.gather import read_preset, run_info, stage_runs

    run = client.get_run(parent_run_id)
    resolved, _ = read_preset(client, run_info(run), preset)
    stages = stage_runs(client, run.info.experiment_id, parent_run_id)
    metrics = compute_metrics(stage_compute(stages, resolved))
    now = int(time.time() * 1000)
    client.log_batch(parent_run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    return metrics
