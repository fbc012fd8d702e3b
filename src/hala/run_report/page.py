"""The run report as one self-contained HTML page: :func:`build_report` and :func:`write_report`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hala.config import Preset
from hala.run_report import facts, render_pipeline, render_results, render_run
from hala.run_report import markup as m
from hala.run_report.compute import stage_compute
from hala.run_report.gather import Snapshot, gather

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

NAV = (
    ("table1", "Table 1"),
    ("table2", "Table 2"),
    ("models", "Models and gates"),
    ("funnel", "Data funnel"),
    ("training", "Training"),
    ("judge", "Judge and corpus"),
    ("fp8", "FP8"),
    ("compute", "Compute and cost"),
    ("stages", "Stage outcomes"),
    ("lineage", "Lineage"),
)


def render(snapshot: Snapshot) -> str:
    """The page of a gathered run."""
    rows = stage_compute(snapshot.stages, snapshot.preset)
    funnel_rows = facts.funnel(snapshot)
    sections = [
        render_results.table1_section(snapshot),
        render_results.table2_section(snapshot),
        render_results.models_section(snapshot),
        render_pipeline.funnel_section(snapshot),
        render_pipeline.training_section(snapshot),
        render_pipeline.judge_section(snapshot, funnel_rows),
        render_pipeline.fp8_section(snapshot),
        render_run.compute_section(snapshot, rows),
        render_run.stages_section(snapshot, rows),
        render_run.lineage_section(snapshot),
    ]
    title = f"HALA run report: {snapshot.parent.name}"
    return m.page(title, render_run.header(snapshot, rows), NAV, sections)


def build_report(parent_run_id: str, client: MlflowClient, preset: Preset | None = None) -> str:
    """The HTML page of the pipeline run whose parent MLflow run is ``parent_run_id``.

    ``client`` reads the tracking store and the model registry; ``preset`` defaults to the run's
    ``preset.json`` artifact. Works for a run that failed or is still open: what did not finish shows
    as such.
    """
    return render(gather(parent_run_id, client, preset))


def write_report(
    parent_run_id: str, client: MlflowClient, out: Path | str, preset: Preset | None = None
) -> Path:
    """Write :func:`build_report`'s page to ``out`` (UTF-8; parent folders created); returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(parent_run_id, client, preset), encoding="utf-8")
    return path


def log_report(parent_run_id: str, client: MlflowClient, path: Path | str) -> None:
    """Log a written page as the parent run's artifact ``report/run_report.html``."""
    client.log_artifact(parent_run_id, str(path), "report")
