"""The pipeline run's own stages: ``start`` opens its parent MLflow run, ``finish`` closes it.

``start`` records what a rerun needs: the resolved preset byte for byte, its fingerprint and file
hash, the seed, each stage's image, the git commit and package versions, and a link to the KFP run
when the Kubeflow UI address is known. ``finish`` runs in the exit handler, whatever happened: it
closes the parent run and any stage run a killed pod left open (FINISHED when the pipeline
succeeded, KILLED when it was cancelled, FAILED otherwise) and writes the run's report page
(:mod:`hala.run_report`), which also shows what failed or never ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hala.config import Preset

PRESET_FILE = "preset.json"  # the resolved preset, written by the run's settings task


def start(
    preset_dir: str, run_name: str, preset_file_hash: str, images: Mapping[str, str], kfp_ui: str
) -> str:
    """Open the pipeline's parent MLflow run, tagged with the KFP run id; returns its id."""
    from mlflow.tracking import MlflowClient

    from hala import registry, tracking
    from hala.stages.context import run_context

    context = run_context()
    preset_json = (Path(preset_dir) / PRESET_FILE).read_text(encoding="utf-8")
    preset = Preset.model_validate_json(preset_json)
    params = {"preset": preset.name, "preset_fingerprint": preset.fingerprint(), "seed": str(preset.seed)}
    if preset_file_hash:
        params["preset_file_sha256"] = preset_file_hash
    params |= {f"{registry.PARAM_IMAGE_PREFIX}{stage}": ref for stage, ref in images.items()}
    run_id = tracking.start_pipeline_run(context.experiment, run_name, params, context.run_id)
    client = MlflowClient(tracking.tracking_uri())
    client.log_text(run_id, preset_json, registry.ARTIFACT_PRESET_JSON)
    if kfp_ui:
        link = f"{kfp_ui.rstrip('/')}/#/runs/details/{context.run_id}"
        client.set_tag(run_id, registry.TAG_KFP_RUN_LINK, link)
    return run_id


def final_status(state: str) -> str:
    """The MLflow status of a pipeline run that ended in KFP ``state``."""
    state = state.upper()
    if state == "SUCCEEDED":
        return "FINISHED"
    return "KILLED" if state.startswith("CANCEL") else "FAILED"


def finish(state: str, report_path: str | None = None) -> str | None:
    """Close the parent run (and any stage run left RUNNING) of this pipeline run, then report on it.

    The run's compute and cost figures are logged on the parent run and its report page written to
    ``report_path`` and logged there too. Returns the parent's id; None when the pipeline failed
    before its start task created the parent run (nothing to report).
    """
    from hala import tracking
    from hala.run_report import log_compute_metrics, log_report, write_report
    from hala.stages.context import run_context

    context = run_context()
    parent = tracking.finish_pipeline_run(context.experiment, context.run_id, final_status(state))
    if parent is not None and report_path:
        client = tracking.registry_client()
        log_compute_metrics(parent, client)
        log_report(parent, client, write_report(parent, client, report_path))
    return parent
