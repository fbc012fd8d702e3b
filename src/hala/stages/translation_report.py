"""Stage ``translation_report``: Table 2 over every system, and the translator's chrF++ gate.

The report's two blocks (teacher FP16 then FP8; LFM2 base then our translator, with deltas) beside
the report's published rows, then the FP8 check the teacher passed before it translated (stage
``validate_fp8``: chrF++ of both teachers on OPUS pairs). This task always runs (never from KFP's
cache); its inputs name every stage Table 2 rests on, so a rerun's parent run links them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from hala.config import GateConfig, Preset
from hala.errors import HalaError
from hala.stages.reports import ReportOutcome
from hala.stages.settings import StageSettings


class TranslationReportSettings(StageSettings):
    """The gates (the translator's chrF++ floor)."""

    gates: GateConfig


def settings(preset: Preset) -> TranslationReportSettings:
    """The ``translation_report`` settings."""
    return TranslationReportSettings(gates=preset.eval.gates)


def fp8_line(validation_dir: str) -> str:
    """The FP8 check's figures (what ``validate_fp8`` wrote) as one markdown line."""
    from hala.stages.validate_fp8 import VALIDATION_FILE, read_validation

    path = Path(validation_dir) / VALIDATION_FILE
    try:
        m = read_validation(validation_dir)
        chrf = (m["quant.chrf_source"], m["quant.chrf_fp8"], m["quant.chrf_delta"])
        sizes = (m["quant.size_source_bytes"] / 2**20, m["quant.size_fp8_bytes"] / 2**20)
    except (OSError, ValueError, KeyError) as exc:
        raise HalaError(f"{path}: not the FP8 check's figures ({exc}); rerun stage validate_fp8") from exc
    return (
        f"FP8 check before translation (validate_fp8): chrF++ {chrf[0]:.2f} (source) vs {chrf[1]:.2f} "
        f"(FP8), delta {chrf[2]:+.2f}; weights {sizes[0]:.1f} MiB -> {sizes[1]:.1f} MiB\n"
    )


def run(
    settings: TranslationReportSettings,
    result_dirs: Mapping[str, str],
    registered_dir: str,
    fp8_dir: str,
    out_dir: str,
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
    fp8 = fp8_line(fp8_dir)
    inputs = [*result_dirs.values(), registered_dir, fp8_dir]
    with open_stage("report-translation", inputs=inputs, outputs=[out_dir]):
        record_verdict(registry_client(), version.name, version.version, verdict)
        title = "Table 2: EN->AR on sampled MMLU questions vs MMMLU, beside the report's"
        paths = write_outputs(table, Path(out_dir), title)
        for path in paths.values():
            mlflow.log_artifact(str(path), "report")
    tag_version_metrics(version.name, version.version, {"translation.chrf": chrf})
    done = outcome(table, verdict, paths, f"{version.name} version {version.version}")
    return dataclasses.replace(done, markdown=f"{done.markdown}\n{fp8}")
