"""The hala pipeline graph, built from a preset (no postponed annotations: KFP reads them).

The preset fixes the shape at compile time (which sources get a task, how many shards fan out);
its resolved JSON is also the ``preset_json`` parameter every task reads, so a run records exactly
what it ran with.
"""

from collections.abc import Callable

from kfp import dsl

from hala.config import EngineConfig, ModelRef, Preset
from hala_components.data import finish_run_op, prepare_source_op, start_run_op
from hala_components.translate import (
    bilingual_set_op,
    corpus_translate_op,
    fetch_model_op,
    judge_filter_op,
    quantize_op,
    teacher_translate_op,
)
from hala_pipelines.cluster import on_gpu_pool, place, with_secrets, with_work_volume


def build_pipeline(preset: Preset, preset_file_hash: str = "") -> Callable[..., object]:
    """A KFP pipeline function for ``preset`` (compile it, or call it under ``kfp.local``)."""
    cluster = preset.cluster
    shards = list(range(preset.data.num_shards))

    def cpu(task: dsl.PipelineTask) -> dsl.PipelineTask:
        return with_secrets(place(task, cluster.data_pool), cluster)

    def gpu(task: dsl.PipelineTask, engine: EngineConfig) -> dsl.PipelineTask:
        task.set_retry(num_retries=cluster.retries, backoff_duration="60s")
        return with_work_volume(with_secrets(on_gpu_pool(task, cluster, engine), cluster), cluster)

    def fetch(role: str, ref: ModelRef, preset_json: str) -> dsl.PipelineTask:
        task = fetch_model_op(preset_json=preset_json, model_id=ref.id, revision=ref.revision)
        return cpu(task.set_display_name(f"model {role}"))

    @dsl.pipeline(
        name=f"hala-{preset.name}",
        description=f"HALA translate-and-tune recipe, preset '{preset.name}': {preset.description}",
    )
    def hala_pipeline(
        preset_json: str = preset.to_json(), run_name: str = "", work_root: str = cluster.work_root
    ) -> None:
        """The HALA recipe, tracked under one parent MLflow run.

        Args:
            preset_json: the resolved preset (defaults to the one compiled in).
            run_name: name of the parent MLflow run (empty: MLflow picks one).
            work_root: folder shared by retries of a shard task (the work volume's mount point).
        """
        kfp_run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        finish_task = finish_run_op(preset_json=preset_json, kfp_run_id=kfp_run_id)
        cpu(finish_task.set_display_name("finish MLflow run").set_caching_options(False))
        with dsl.ExitHandler(finish_task, name="tracked-run"):
            start_task = start_run_op(
                preset_json=preset_json,
                run_name=run_name,
                preset_file_hash=preset_file_hash,
                kfp_run_id=kfp_run_id,
            )
            cpu(start_task.set_display_name("start MLflow run").set_caching_options(False))
            run_id = start_task.output

            prepared = {}
            for key in preset.enabled_sources():
                task = prepare_source_op(preset_json=preset_json, source=key, parent_run_id=run_id)
                cpu(
                    task.set_display_name(f"prepare {key}").set_retry(
                        num_retries=cluster.retries, backoff_duration="30s"
                    )
                )
                prepared[key] = task.outputs["prepared"]

            teacher_model = fetch("teacher", preset.teacher.model, preset_json)
            judge_model = fetch("judge", preset.judge.model, preset_json)
            translator_model = fetch("translator base", preset.translator.base, preset_json)

            quant_task = quantize_op(
                preset_json=preset_json,
                parent_run_id=run_id,
                source_model=teacher_model.outputs["model"],
                opus=prepared["opus100"],
            )
            gpu(quant_task.set_display_name("quantize teacher FP8"), preset.teacher.engine)

            def fan_out(
                op: Callable[..., dsl.PipelineTask], engine: EngineConfig, name: str, **inputs: object
            ) -> dsl.PipelineTask:
                """One task per shard, at most ``engine.parallelism`` at once; returns the loop's task."""
                with dsl.ParallelFor(items=shards, parallelism=engine.parallelism, name=name) as shard:
                    task = op(
                        preset_json=preset_json,
                        kfp_run_id=kfp_run_id,
                        work_root=work_root,
                        shard=shard,
                        **inputs,
                    )
                    gpu(task.set_display_name(name), engine)
                return task

            teacher_task = fan_out(
                teacher_translate_op,
                preset.teacher.engine,
                "teacher-translate",
                model=quant_task.outputs["quantized"],
                prepared=prepared["openorca"],
            )
            judge_task = fan_out(
                judge_filter_op,
                preset.judge.engine,
                "judge-filter",
                model=judge_model.outputs["model"],
                prepared=prepared["opus100"],
            )

            bilingual_task = bilingual_set_op(
                preset_json=preset_json,
                parent_run_id=run_id,
                teacher=dsl.Collected(teacher_task.outputs["translated"]),
                judged=dsl.Collected(judge_task.outputs["accepted"]),
            )
            cpu(bilingual_task.set_display_name("bilingual set"))

            # Until the translator is trained in this graph (issue 4), the corpus is translated by
            # the translator's base model; the stage takes whichever model artifact it is given.
            for source in preset.corpus.sources:
                fan_out(
                    corpus_translate_op,
                    preset.corpus.engine,
                    f"translate-{source}",
                    source=source,
                    model=translator_model.outputs["model"],
                    prepared=prepared[source],
                )

    return hala_pipeline
