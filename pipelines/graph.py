"""The hala pipeline graph, built from a preset (no postponed annotations: KFP reads them).

The preset fixes the shape at compile time (which sources get a task, how many shards fan out);
its resolved JSON is also the ``preset_json`` parameter every task reads, so a run records exactly
what it ran with.
"""

import json
from collections.abc import Callable

from kfp import dsl

from hala.config import EngineConfig, ModelRef, NodePool, Preset, TrainingConfig, teacher_pool
from hala_components.data import finish_run_op, preflight_op, prepare_source_op, start_run_op
from hala_components.evaluation import (
    benchmark_report_op,
    contamination_op,
    evaluate_op,
    translation_eval_op,
    translation_report_op,
)
from hala_components.images import all_images, image
from hala_components.training import corpus_append_op, corpus_first_op, merge_op, register_op, sft_op
from hala_components.translate import (
    bilingual_set_op,
    corpus_translate_op,
    fetch_model_op,
    judge_filter_op,
    quantize_op,
    teacher_translate_op,
)
from hala_pipelines.cluster import on_gpu_pool, on_training_pool, place, with_secrets, with_work_volume


def build_pipeline(preset: Preset, preset_file_hash: str = "") -> Callable[..., object]:
    """A KFP pipeline function for ``preset`` (compile it, or call it under ``kfp.local``)."""
    cluster = preset.cluster
    shards = list(range(preset.data.num_shards))

    def cpu(task: dsl.PipelineTask) -> dsl.PipelineTask:
        return with_secrets(place(task, cluster.data_pool), cluster)

    def gpu(task: dsl.PipelineTask, engine: EngineConfig, pool: NodePool | None = None) -> dsl.PipelineTask:
        task.set_retry(num_retries=cluster.retries, backoff_duration="60s")
        return with_work_volume(with_secrets(on_gpu_pool(task, cluster, engine, pool), cluster), cluster)

    def train(task: dsl.PipelineTask, cfg: TrainingConfig) -> dsl.PipelineTask:
        task.set_retry(num_retries=cluster.retries, backoff_duration="120s")
        return with_work_volume(with_secrets(on_training_pool(task, cluster, cfg), cluster), cluster)

    def fetch(role: str, ref: ModelRef, preset_json: str, after: dsl.PipelineTask) -> dsl.PipelineTask:
        task = fetch_model_op(preset_json=preset_json, model_id=ref.id, revision=ref.revision)
        return cpu(task.set_display_name(f"model {role}")).after(after)

    @dsl.pipeline(
        name=f"hala-{preset.name}",
        description=f"HALA translate-and-tune recipe, preset '{preset.name}': {preset.description}",
    )
    def hala_pipeline(
        preset_json: str = preset.to_json(),
        run_name: str = "",
        work_root: str = cluster.work_root,
        kfp_ui: str = "",
    ) -> None:
        """The HALA recipe, tracked under one parent MLflow run.

        Args:
            preset_json: the resolved preset (defaults to the one compiled in).
            run_name: name of the parent MLflow run (empty: MLflow picks one).
            work_root: folder shared by retries of a shard task (the work volume's mount point).
            kfp_ui: the Kubeflow UI address (`hala submit` sets it), for a link from the MLflow run.
        """
        kfp_run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        finish_task = finish_run_op(preset_json=preset_json, kfp_run_id=kfp_run_id)
        cpu(finish_task.set_display_name("finish MLflow run").set_caching_options(False))
        with dsl.ExitHandler(finish_task, name="tracked-run"):
            checks = preflight_op(preset_json=preset_json, work_root=work_root)
            with_work_volume(cpu(checks.set_display_name("preflight").set_caching_options(False)), cluster)
            start_task = start_run_op(
                preset_json=preset_json,
                run_name=run_name,
                preset_file_hash=preset_file_hash,
                kfp_run_id=kfp_run_id,
                images_json=json.dumps(all_images(), sort_keys=True),
                kfp_ui=kfp_ui,
            )
            cpu(start_task.set_display_name("start MLflow run").set_caching_options(False)).after(checks)
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

            teacher_model = fetch("teacher", preset.teacher.model, preset_json, checks)
            judge_model = fetch("judge", preset.judge.model, preset_json, checks)
            translator_model = fetch("translator base", preset.translator.base, preset_json, checks)

            quant_task = quantize_op(
                preset_json=preset_json,
                parent_run_id=run_id,
                source_model=teacher_model.outputs["model"],
                opus=prepared["opus100"],
            )
            gpu(
                quant_task.set_display_name("quantize teacher FP8"),
                preset.teacher.engine,
                teacher_pool(cluster),
            )

            def fan_out(
                op: Callable[..., dsl.PipelineTask],
                engine: EngineConfig,
                name: str,
                pool: NodePool | None = None,
                **inputs: object,
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
                    gpu(task.set_display_name(name), engine, pool)
                return task

            teacher_task = fan_out(
                teacher_translate_op,
                preset.teacher.engine,
                "teacher-translate",
                teacher_pool(cluster),
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

            def sft(role: str, cfg: TrainingConfig, base: dsl.PipelineTask, data: object) -> dsl.PipelineTask:
                task = sft_op(
                    preset_json=preset_json,
                    kfp_run_id=kfp_run_id,
                    work_root=work_root,
                    role=role,
                    image_ref=image("train"),
                    base=base.outputs["model"],
                    data=data,
                )
                return train(task.set_display_name(f"sft {role} ({cfg.gpus} GPU, {cfg.deepspeed})"), cfg)

            def register(role: str, model: object) -> dsl.PipelineTask:
                task = register_op(preset_json=preset_json, kfp_run_id=kfp_run_id, role=role, model=model)
                return cpu(task.set_display_name(f"register {role}"))

            translator_sft = sft(
                "translator",
                preset.translator.training,
                translator_model,
                bilingual_task.outputs["bilingual"],
            )
            translator_version = register("translator", translator_sft.outputs["model"]).output

            systems = {  # Table 2: every system that translates, on its own engine
                "translator_base": (translator_model.outputs["model"], preset.corpus.engine),
                "translator": (translator_sft.outputs["model"], preset.corpus.engine),
                "teacher": (teacher_model.outputs["model"], preset.teacher.engine),
                "teacher_fp8": (quant_task.outputs["quantized"], preset.teacher.engine),
            }
            translation_results = {}
            for system, (model, engine) in systems.items():
                task = translation_eval_op(
                    preset_json=preset_json,
                    kfp_run_id=kfp_run_id,
                    system=system,
                    model=model,
                    mmlu=prepared["mmlu"],
                    mmmlu=prepared["mmmlu"],
                )
                translation_results[system] = gpu(task.set_display_name(f"translation eval {system}"), engine)
            translation_report = translation_report_op(
                preset_json=preset_json,
                kfp_run_id=kfp_run_id,
                translator_version=translator_version,
                **{s: t.outputs["result"] for s, t in translation_results.items()},
            )
            cpu(translation_report.set_display_name("report translation (Table 2)"))

            corpus = None
            for source in preset.corpus.sources:
                translated = fan_out(
                    corpus_translate_op,
                    preset.corpus.engine,
                    f"translate-{source}",
                    source=source,
                    model=translator_sft.outputs["model"],
                    prepared=prepared[source],
                )
                parts = dsl.Collected(translated.outputs["translated"])
                if corpus is None:
                    corpus = corpus_first_op(source=source, shards=parts)
                else:
                    corpus = corpus_append_op(source=source, shards=parts, previous=corpus.outputs["corpus"])
                cpu(corpus.set_display_name(f"corpus + {source}"))
            assert corpus is not None  # the preset validates that corpus.sources is not empty

            contamination = contamination_op(
                preset_json=preset_json,
                kfp_run_id=kfp_run_id,
                corpus=corpus.outputs["corpus"],
                bilingual=bilingual_task.outputs["bilingual"],
                mmlu=prepared["mmlu"],
            )
            cpu(contamination.set_display_name("contamination check"))

            for size, student in preset.students.items():
                base = fetch(f"student {size}", student.base, preset_json, checks)
                finetuned = sft(size, student.training, base, corpus.outputs["corpus"])
                merged = merge_op(
                    preset_json=preset_json,
                    kfp_run_id=kfp_run_id,
                    role=size,
                    finetuned=finetuned.outputs["model"],
                    base=base.outputs["model"],
                )
                with_secrets(place(merged.set_display_name(f"merge {size}"), cluster.merge_pool), cluster)
                version = register(size, merged.outputs["merged"]).output

                models = {
                    "base": base.outputs["model"],
                    "finetuned": finetuned.outputs["model"],
                    "merged": merged.outputs["merged"],
                }
                scores = {}
                for variant, model in models.items():
                    task = evaluate_op(
                        preset_json=preset_json,
                        kfp_run_id=kfp_run_id,
                        role=size,
                        variant=variant,
                        model=model,
                    )
                    task.set_display_name(f"evaluate {size} {variant}")
                    scores[variant] = on_gpu_pool(with_secrets(task, cluster), cluster, preset.eval.engine)
                report = benchmark_report_op(
                    preset_json=preset_json,
                    kfp_run_id=kfp_run_id,
                    role=size,
                    model_version=version,
                    contamination=contamination.outputs["report"],
                    **{v: t.outputs["scores"] for v, t in scores.items()},
                )
                cpu(report.set_display_name(f"report {size} (Table 1)"))

    return hala_pipeline
