"""Components of the data-preparation stages and of the run bookkeeping around them.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl

from hala_components.images import image

DATA_IMAGE = image("data")


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def preflight_op(preset_json: str, work_root: str) -> str:
    """Check the tracking server, the registry, the secrets and the work volume before any GPU work."""
    from hala import stages

    return "\n".join(stages.preflight(preset_json, work_root))


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def start_run_op(
    preset_json: str, run_name: str, preset_file_hash: str, kfp_run_id: str, images_json: str, kfp_ui: str
) -> str:
    """Open the parent MLflow run of this pipeline run, tagged with the KFP run id; outputs its id."""
    import json

    from hala import stages

    return stages.start(preset_json, run_name, preset_file_hash, kfp_run_id, json.loads(images_json), kfp_ui)


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def prepare_source_op(
    preset_json: str, source: str, parent_run_id: str, prepared: dsl.Output[dsl.Dataset]
) -> None:
    """Read, validate, normalise and shard one source into the ``prepared`` folder."""
    from hala import stages

    counts = stages.prepare(preset_json, source, parent_run_id, prepared.path)
    prepared.metadata.update({"read": counts.read, "kept": counts.kept, "quarantined": counts.quarantined})


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def finish_run_op(preset_json: str, kfp_run_id: str, status: dsl.PipelineTaskFinalStatus) -> None:
    """Close the parent MLflow run of ``kfp_run_id`` with the final state; runs even on failure."""
    from hala import stages

    stages.finish(preset_json, kfp_run_id, status.state)
