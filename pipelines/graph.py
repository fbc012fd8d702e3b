"""The hala pipeline graph, built from a preset (no postponed annotations: KFP reads them).

The preset fixes the shape at compile time (which sources get a task); its resolved JSON is also
the ``preset_json`` parameter every task reads, so a run records exactly what it ran with.
"""

from collections.abc import Callable

from kfp import dsl

from hala.config import Preset
from hala_components.data import finish_run_op, prepare_source_op, start_run_op
from hala_pipelines.cluster import place, with_secrets


def build_pipeline(preset: Preset, preset_file_hash: str = "") -> Callable[..., object]:
    """A KFP pipeline function for ``preset`` (compile it, or call it under ``kfp.local``)."""
    cluster = preset.cluster

    @dsl.pipeline(
        name=f"hala-{preset.name}",
        description=f"HALA translate-and-tune recipe, preset '{preset.name}': {preset.description}",
    )
    def hala_pipeline(preset_json: str = preset.to_json(), run_name: str = "") -> None:
        """Prepare every source of the preset, tracked under one parent MLflow run.

        Args:
            preset_json: the resolved preset (defaults to the one compiled in).
            run_name: name of the parent MLflow run (empty: MLflow picks one).
        """
        kfp_run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        finish_task = finish_run_op(preset_json=preset_json, kfp_run_id=kfp_run_id)
        finish_task.set_display_name("finish MLflow run").set_caching_options(False)
        with_secrets(place(finish_task, cluster.data_pool), cluster)
        with dsl.ExitHandler(finish_task, name="tracked-run"):
            start_task = start_run_op(
                preset_json=preset_json,
                run_name=run_name,
                preset_file_hash=preset_file_hash,
                kfp_run_id=kfp_run_id,
            )
            start_task.set_display_name("start MLflow run").set_caching_options(False)
            with_secrets(place(start_task, cluster.data_pool), cluster)
            for key in preset.enabled_sources():
                prepare_task = prepare_source_op(
                    preset_json=preset_json, source=key, parent_run_id=start_task.output
                )
                prepare_task.set_display_name(f"prepare {key}").set_retry(
                    num_retries=cluster.retries, backoff_duration="30s"
                )
                with_secrets(place(prepare_task, cluster.data_pool), cluster)

    return hala_pipeline
