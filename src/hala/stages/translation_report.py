"""Stage ``translation_report``: Table 2 over every system, and the translator's chrF++ gate.

The report's two blocks (teacher FP16 then FP8; LFM2 base then our translator, with deltas) beside
the report's published rows. This task always runs (never from KFP's cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hala.config import GateConfig, Preset
from hala.stages.reports import ReportOutcome
from hala.stages.settings import StageSettings


class TranslationReportSettings(StageSettings):
    """The gates (the translator's chrF++ floor)."""

    gates: GateConfig


def settings(preset: Preset) -> TranslationReportSettings:
    """The ``translation_report`` settings."""
    return TranslationReportSettings(gates=preset.eval.gates)


def run(
    settings: TranslationReportSettings, result_dirs: Mapping[str, str], registered_dir: str, out_dir: str
) -> ReportOutcome:
    """Write Table 2 to ``out_dir`` and gate the translator's version; the table and verdict."""
    import mlflow

    from hala.evaluation.gates import record_verdict, translator_verdict
    from hala.evaluation.report import translation_table, write_outputs
    from hala.stages.context import open_stage
    from hala.stages.register import read_registered
    from hala.stages.reports import outcome, tag_version_metrics
    from hala.stages.translation_eval import read_result
    from hala.tracking import registry_client

    results = {system: read_result(folder) for system, folder in result_dirs.items()}
    table = translation_table(results)
    chrf = float(results["translator"]["chrf"])
    verdict = translator_verdict(settings.gates, chrf)
    version = read_registered(registered_dir)
    inputs = [*result_dirs.values(), registered_dir]
    with open_stage("report-translation", inputs=inputs, outputs=[out_dir]):
        record_verdict(registry_client(), version.name, version.version, verdict)
        title = "Table 2: EN->AR on sampled MMLU questions vs MMMLU, beside the report's"
        paths = write_outputs(table, Path(out_dir), title)
        for path in paths.values():
            mlflow.log_artifact(str(path), "report")
    tag_version_metrics(version.name, version.version, {"translation.chrf": chrf})
    return outcome(table, verdict, paths, f"{version.name} version {version.version}")
