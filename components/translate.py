"""Components of the translation stages: models, FP8 teacher, teacher, judge, bilingual set, corpus.

No `from __future__ import annotations` here: KFP reads the real annotation objects. Tasks inside a
``ParallelFor`` take the KFP run id, not the start task's output, and the library finds the parent
MLflow run by it: KFP 2.17's local runner hands such tasks the loop item in place of an upstream
task's output parameter.
"""

from kfp import dsl

from hala_components.images import image

DATA_IMAGE, QUANTIZE_IMAGE, TRANSLATE_IMAGE = image("data"), image("quantize"), image("translate")


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def fetch_model_op(preset_json: str, model_id: str, revision: str, model: dsl.Output[dsl.Model]) -> None:
    """Materialise a model: a hub snapshot at its revision, or a tiny model built offline."""
    from pathlib import Path

    from hala.config import ModelRef, Preset
    from hala.models import fetch_model

    preset = Preset.model_validate_json(preset_json)
    fetch_model(ModelRef(id=model_id, revision=revision), Path(model.path), seed=preset.seed)
    model.metadata.update({"model_id": model_id, "revision": revision})


@dsl.component(base_image=QUANTIZE_IMAGE, install_kfp_package=False)
def quantize_op(
    preset_json: str,
    parent_run_id: str,
    source_model: dsl.Input[dsl.Model],
    opus: dsl.Input[dsl.Dataset],
    quantized: dsl.Output[dsl.Model],
    validation: dsl.Output[dsl.Metrics],
) -> None:
    """FP8-dynamic teacher, gated on chrF++ against the source model."""
    from hala.translate import stages

    for name, value in stages.quantize(
        preset_json, parent_run_id, source_model.path, opus.path, quantized.path
    ).items():
        validation.log_metric(name, value)


@dsl.component(base_image=TRANSLATE_IMAGE, install_kfp_package=False)
def teacher_translate_op(
    preset_json: str,
    kfp_run_id: str,
    work_root: str,
    shard: int,
    model: dsl.Input[dsl.Model],
    prepared: dsl.Input[dsl.Dataset],
    translated: dsl.Output[dsl.Dataset],
) -> None:
    """One OpenOrca shard through the teacher (resumes from its work folder when retried)."""
    from hala.translate import stages

    task = stages.ShardTask(
        preset_json, kfp_run_id, work_root, shard, model.path, prepared.path, translated.path
    )
    translated.metadata.update(stages.teacher_translate(task))


@dsl.component(base_image=TRANSLATE_IMAGE, install_kfp_package=False)
def judge_filter_op(
    preset_json: str,
    kfp_run_id: str,
    work_root: str,
    shard: int,
    model: dsl.Input[dsl.Model],
    prepared: dsl.Input[dsl.Dataset],
    accepted: dsl.Output[dsl.Dataset],
) -> None:
    """One OPUS-100 shard through the bilingual judge; accepted pairs out."""
    from hala.translate import stages

    task = stages.ShardTask(
        preset_json, kfp_run_id, work_root, shard, model.path, prepared.path, accepted.path
    )
    accepted.metadata.update(stages.judge_filter(task))


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def bilingual_set_op(
    preset_json: str,
    parent_run_id: str,
    teacher: dsl.Input[list[dsl.Dataset]],
    judged: dsl.Input[list[dsl.Dataset]],
    bilingual: dsl.Output[dsl.Dataset],
) -> None:
    """The translator's training set from every teacher shard and every judged shard."""
    from hala.translate import stages

    summary = stages.bilingual_set(
        preset_json, parent_run_id, [t.path for t in teacher], [j.path for j in judged], bilingual.path
    )
    bilingual.metadata.update({k: v for k, v in summary.items() if isinstance(v, int)})


@dsl.component(base_image=TRANSLATE_IMAGE, install_kfp_package=False)
def corpus_translate_op(
    preset_json: str,
    kfp_run_id: str,
    work_root: str,
    source: str,
    shard: int,
    model: dsl.Input[dsl.Model],
    prepared: dsl.Input[dsl.Dataset],
    translated: dsl.Output[dsl.Dataset],
) -> None:
    """One shard of an English instruction source through the translator, turn by turn."""
    from hala.translate import stages

    task = stages.ShardTask(
        preset_json, kfp_run_id, work_root, shard, model.path, prepared.path, translated.path
    )
    translated.metadata.update(stages.corpus_translate(task, source))
