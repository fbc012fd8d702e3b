"""Stage ``benchmark_report``: Table 1 for one student size, and the promotion gate on its version.

The report's layout (base, fine-tune, HALA = merged, with deltas over the base) beside the report's
published rows of the same size bucket; the gate verdict and its reasons become tags on the merged
model's version. This task always runs (never from KFP's cache): a changed gate re-judges the same
scores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from hala.config import GateConfig, Preset
from hala.stages.evaluate import PARAMS_FILE, VARIANTS
from hala.stages.reports import ReportOutcome
from hala.stages.settings import StageSettings


class BenchmarkReportSettings(StageSettings):
    """The size, its base and registered names, the benchmarks and the gates."""

    role: str
    base_model: str
    registered_name: str
    benchmarks: list[str]
    gates: GateConfig


def settings(preset: Preset, *, role: str) -> BenchmarkReportSettings:
    """The ``benchmark_report`` settings of one student size."""
    student = preset.students[role]
    return BenchmarkReportSettings(
        role=role,
        base_model=student.base.id,
        registered_name=student.registered_name,
        benchmarks=preset.eval.benchmarks,
        gates=preset.eval.gates,
    )


def read_scores(score_dirs: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Each variant's scores in points (LightEval's accuracies are fractions; tables and gates use 0-100)."""
    return {
        variant: {
            k: 100 * s
            for k, s in json.loads((Path(score_dirs[variant]) / "scores.json").read_text())["scores"].items()
        }
        for variant in VARIANTS
    }


def run(
    settings: BenchmarkReportSettings,
    score_dirs: Mapping[str, str],
    contamination_dir: str,
    registered_dir: str,
    out_dir: str,
) -> ReportOutcome:
    """Write Table 1 (markdown, CSV, chart) to ``out_dir``, gate the version; the table and verdict."""
    import mlflow

    from hala.evaluation.contamination import contamination_fractions
    from hala.evaluation.gates import evaluate_gates, record_verdict
    from hala.evaluation.report import bar_chart, benchmark_table, write_outputs
    from hala.stages.context import open_stage
    from hala.stages.register import read_registered
    from hala.stages.reports import outcome, tag_version_metrics
    from hala.tracking import registry_client

    scores = read_scores(score_dirs)
    report = json.loads((Path(contamination_dir) / "contamination.json").read_text())
    # a student answers for the Arabic benchmarks (the mmlu row is the translator benchmark's)
    fractions = {k: v for k, v in contamination_fractions(report).items() if k in settings.benchmarks}
    verdict = evaluate_gates(settings.gates, scores, contamination=fractions)
    version = read_registered(registered_dir)
    params = {
        variant: json.loads((Path(folder) / PARAMS_FILE).read_text())["params"]
        for variant, folder in score_dirs.items()
        if (Path(folder) / PARAMS_FILE).is_file()
    }
    table = benchmark_table(
        scores, settings.benchmarks, settings.role, settings.base_model, version.name, params=params
    )
    inputs = [*score_dirs.values(), contamination_dir, registered_dir]
    with open_stage(f"report-{settings.role}", inputs=inputs, outputs=[out_dir]) as stage:
        record_verdict(registry_client(), version.name, version.version, verdict)
        title = f"HALA {settings.role}: Arabic benchmarks (accuracy, %), beside the report's Table 1"
        paths = write_outputs(table, Path(out_dir), title)
        paths["chart"] = bar_chart(scores, settings.benchmarks, Path(out_dir) / "chart.png", title)
        for path in paths.values():
            mlflow.log_artifact(str(path), "report")
        stage.log_metrics({f"eval.{v}.{k}": s for v, row in scores.items() for k, s in row.items()})
        mlflow.set_tags(
            {"hala.gate.verdict": verdict.verdict, "hala.model": f"{version.name}/{version.version}"}
        )
    tag_version_metrics(version.name, version.version, {"eval.average": scores["merged"]["average"]})
    return outcome(table, verdict, paths, f"{version.name} version {version.version}")
