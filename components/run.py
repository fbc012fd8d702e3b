"""Components of the run itself: open and close its parent MLflow run, check the cluster first.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl

from hala_components.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def preflight_op(settings: str) -> str:
    """Check the tracking server, the registry, the secrets and the work volume before any GPU work.

    Args:
        settings: this stage's settings (JSON), from the run's settings task.

    Returns:
        The checks that passed, one per line.
    """
    from hala.stages import preflight

    return "\n".join(preflight.run(preflight.PreflightSettings.parse(settings)))


@dsl.component(base_image=image("data"), install_kfp_package=False)
def start_op(
    preset: dsl.Input[dsl.Artifact], run_name: str, preset_file_hash: str, images: str, kfp_ui: str
) -> str:
    """Open the parent MLflow run of this pipeline run, tagged with the KFP run id.

    Args:
        preset: the resolved preset of this run (from the settings task).
        run_name: name of the parent MLflow run (empty: MLflow picks one).
        preset_file_hash: SHA-256 of the preset file the pipeline was compiled from.
        images: JSON of the image of every stage.
        kfp_ui: the Kubeflow UI address, for a link from the MLflow run (empty: no link).

    Returns:
        The parent MLflow run id.
    """
    import json

    from hala.stages import run

    return run.start(preset.path, run_name, preset_file_hash, json.loads(images), kfp_ui)


@dsl.component(base_image=image("data"), install_kfp_package=False)
def finish_op(status: dsl.PipelineTaskFinalStatus, report: dsl.Output[dsl.HTML]) -> None:
    """Close the parent MLflow run with the pipeline's final state and write the run's report page.

    Runs in the exit handler, also when a stage failed or the run was cancelled.

    Args:
        status: the pipeline's final status (set by KFP).
        report: the run's report page (tables, data funnel, training curves, compute and cost).
    """
    from hala.stages import run

    run.finish(status.state, report.path)
