"""Stage entry points: what each KFP component calls, one function per stage.

Each takes the resolved preset as JSON (the pipeline parameter) and plain paths, so the same call
runs in a cluster container, under the local runner and in a unit test.
"""

from __future__ import annotations

import json
from pathlib import Path

from hala import tracking
from hala.config import Preset
from hala.prepare import SourceCounts, prepare_source
from hala.sources import get_source


def parse_preset(preset_json: str) -> Preset:
    """The resolved preset a pipeline run was given."""
    return Preset.model_validate(json.loads(preset_json))


def source_location(preset: Preset, key: str) -> str:
    """Where a source is read from: ``<data.root>/<key>`` when the preset has a root, else the hub id."""
    spec = get_source(key)
    return str(Path(preset.data.root) / key) if preset.data.root else spec.hub_id


def start(preset_json: str, run_name: str, preset_file_hash: str, kfp_run_id: str) -> str:
    """Open the pipeline's parent MLflow run, tagged with the KFP run id; returns its id."""
    preset = parse_preset(preset_json)
    params = {"preset": preset.name, "preset_fingerprint": preset.fingerprint(), "seed": str(preset.seed)}
    if preset_file_hash:
        params["preset_file_sha256"] = preset_file_hash
    return tracking.start_pipeline_run(preset.tracking.experiment, run_name, params, kfp_run_id)


def prepare(preset_json: str, key: str, parent_run_id: str, out_dir: str) -> SourceCounts:
    """Read, validate, normalise and shard one source, logged as a nested MLflow run."""
    preset = parse_preset(preset_json)
    settings = preset.data.sources[key]
    with tracking.stage_run(parent_run_id, f"prepare-{key}"):
        counts = prepare_source(
            get_source(key),
            source_location(preset, key),
            Path(out_dir),
            num_shards=preset.data.num_shards,
            limit=settings.limit,
            revision=settings.revision,
        )
        tracking.log_source_counts(counts, parent_run_id)
    return counts


def finish(preset_json: str, kfp_run_id: str, status: str) -> None:
    """Close the parent run of ``kfp_run_id`` with the pipeline's final status."""
    tracking.finish_pipeline_run(parse_preset(preset_json).tracking.experiment, kfp_run_id, status)
