"""Stage entry points: what each KFP component calls, one function per stage.

Each takes the resolved preset as JSON (the pipeline parameter) and plain paths, so the same call
runs in a cluster container, under the local runner and in a unit test.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient

from hala import registry, tracking
from hala.config import Preset
from hala.prepare import SourceCounts, check_quarantine, prepare_source
from hala.sources import get_source


def parse_preset(preset_json: str) -> Preset:
    """The resolved preset a pipeline run was given."""
    return Preset.model_validate(json.loads(preset_json))


def source_location(preset: Preset, key: str) -> str:
    """Where a source is read from: ``<data.root>/<key>`` when the preset has a root, else the hub id."""
    spec = get_source(key)
    return str(Path(preset.data.root) / key) if preset.data.root else spec.hub_id


def preflight(preset_json: str, work_root: str) -> list[str]:
    """The first stage: tracking server, registry, secrets and work storage, before any GPU work.

    Raises one error listing every missing piece and how to fix it; returns the checks that passed.
    """
    from hala.models import TINY_PREFIX
    from hala.preflight import hub_chat_template, required_env_for
    from hala.preflight import preflight as run_checks

    preset = parse_preset(preset_json)
    models = [preset.teacher.model, preset.judge.model, preset.translator.base]
    models += [s.base for s in preset.students.values()]
    reads_hub = (
        preset.data.root is None
        or preset.eval.data_root is None
        or any(not m.id.startswith(TINY_PREFIX) for m in models)
    )
    uri = tracking.tracking_uri()
    required = required_env_for(reads_hub=reads_hub, tracking_auth=uri.startswith(("http://", "https://")))
    # Every SFT base's chat template must be one TRL can mask for assistant-only loss: fail here, before
    # any GPU is requested (tiny models carry LFM2's own template, checked by the tests).
    sft_bases = [preset.translator.base] + [s.base for s in preset.students.values()]
    sft_templates = {
        f"{m.id}@{m.revision}": functools.partial(hub_chat_template, m.id, m.revision)
        for m in sft_bases
        if not m.id.startswith(TINY_PREFIX)
    }
    return run_checks(uri, required, [work_root], sft_templates=sft_templates)


def start(
    preset_json: str,
    run_name: str,
    preset_file_hash: str,
    kfp_run_id: str,
    images: dict[str, str] | None = None,
    kfp_ui: str = "",
) -> str:
    """Open the pipeline's parent MLflow run, tagged with the KFP run id; returns its id.

    It records what a rerun needs: the resolved preset byte for byte, its fingerprint and file
    hash, the seed, the image of every stage, the git commit and package versions (tags), and a
    link to the KFP run when the Kubeflow UI address is known.
    """
    preset = parse_preset(preset_json)
    params = {"preset": preset.name, "preset_fingerprint": preset.fingerprint(), "seed": str(preset.seed)}
    if preset_file_hash:
        params["preset_file_sha256"] = preset_file_hash
    params |= {f"{registry.PARAM_IMAGE_PREFIX}{stage}": ref for stage, ref in (images or {}).items()}
    run_id = tracking.start_pipeline_run(preset.tracking.experiment, run_name, params, kfp_run_id)
    client = MlflowClient(tracking.tracking_uri())
    client.log_text(run_id, preset_json, registry.ARTIFACT_PRESET_JSON)
    if kfp_ui:
        client.set_tag(run_id, registry.TAG_KFP_RUN_LINK, f"{kfp_ui.rstrip('/')}/#/runs/details/{kfp_run_id}")
    return run_id


def prepare(preset_json: str, key: str, parent_run_id: str, out_dir: str) -> SourceCounts:
    """Read, validate, normalise and shard one source, logged as a nested MLflow run."""
    preset = parse_preset(preset_json)
    settings = preset.data.sources[key]
    spec = get_source(key)
    with tracking.stage_run(parent_run_id, f"prepare-{key}"):
        counts = prepare_source(
            spec,
            source_location(preset, key),
            Path(out_dir),
            num_shards=preset.data.num_shards,
            limit=settings.limit,
            revision=settings.revision,
        )
        tracking.log_source_counts(counts, parent_run_id)
        quarantine = pq.read_table(Path(out_dir) / "quarantine.parquet")
        check_quarantine(
            f"source {key} ({spec.hub_id})",
            counts.read,
            quarantine,
            preset.data.max_quarantine_fraction,
            exempt=spec.selections,
        )
    return counts


def finish(preset_json: str, kfp_run_id: str, status: str) -> None:
    """Close the parent run of ``kfp_run_id`` with the pipeline's final status."""
    tracking.finish_pipeline_run(parse_preset(preset_json).tracking.experiment, kfp_run_id, status)
