"""Components of the translation stages: FP8 teacher and its check, teacher, judge, bilingual set, corpus.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl

from hala_components.images import image


@dsl.component(base_image=image("quantize"), install_kfp_package=False)
def quantize_op(settings: str, source_model: dsl.Input[dsl.Model], quantized: dsl.Output[dsl.Model]) -> None:
    """FP8-dynamic teacher (llm-compressor, compressed-tensors).

    Args:
        settings: this stage's settings (JSON: the scheme and the layers left alone).
        source_model: the teacher.
        quantized: the FP8 teacher.
    """
    from hala.stages import quantize

    quantize.run(quantize.QuantizeSettings.parse(settings), source_model.path, quantized.path)


@dsl.component(base_image=image("translate"), install_kfp_package=False)
def validate_fp8_op(
    settings: str,
    source_model: dsl.Input[dsl.Model],
    quantized: dsl.Input[dsl.Model],
    opus: dsl.Input[dsl.Dataset],
    report: dsl.Output[dsl.Dataset],
    validation: dsl.Output[dsl.Metrics],
) -> None:
    """The FP8 teacher against its source on the teacher's engine: chrF++ gate, warm output tokens/s.

    Args:
        settings: this stage's settings (JSON: the gate and its sample, the teacher's prompt and engine).
        source_model: the teacher.
        quantized: the FP8 teacher.
        opus: the prepared OPUS-100 pairs (the first ones are the sample).
        report: validation.json.
        validation: chrF++ of both models, sizes and warm output tokens/s.
    """
    from hala.stages import validate_fp8
    from hala.stages.context import log_kfp_metrics

    figures = validate_fp8.run(
        validate_fp8.ValidateFP8Settings.parse(settings),
        source_model.path,
        quantized.path,
        opus.path,
        report.path,
    )
    log_kfp_metrics(validation, figures.to_metrics())


@dsl.component(base_image=image("translate"), install_kfp_package=False)
def teacher_translate_op(
    settings: str,
    shard: int,
    model: dsl.Input[dsl.Model],
    prepared: dsl.Input[dsl.Dataset],
    translated: dsl.Output[dsl.Dataset],
) -> None:
    """One OpenOrca shard through the teacher (resumes from its work folder when retried).

    Args:
        settings: this stage's settings (JSON: the teacher's prompt, engine, output checks, shards).
        shard: which shard of the prepared source.
        model: the FP8 teacher.
        prepared: the prepared OpenOrca rows.
        translated: the shard's EN/AR tuples, quarantine and counts.
    """
    from hala.stages import teacher
    from hala.stages.shards import ShardPaths

    paths = ShardPaths(shard, model.path, prepared.path, translated.path)
    counts = teacher.run(teacher.TeacherSettings.parse(settings), paths)
    translated.metadata.update({"read": counts.read, "kept": counts.kept, "quarantined": counts.quarantined})


@dsl.component(base_image=image("translate"), install_kfp_package=False)
def judge_filter_op(
    settings: str,
    shard: int,
    model: dsl.Input[dsl.Model],
    prepared: dsl.Input[dsl.Dataset],
    accepted: dsl.Output[dsl.Dataset],
) -> None:
    """One OPUS-100 shard through the strict bilingual judge; accepted pairs out.

    Args:
        settings: this stage's settings (JSON: the judge prompt, engine, readability threshold, shards).
        shard: which shard of the prepared source.
        model: the judge model.
        prepared: the prepared OPUS-100 pairs.
        accepted: the shard's accepted pairs, the rest quarantined by verdict, and counts.
    """
    from hala.stages import judge
    from hala.stages.shards import ShardPaths

    paths = ShardPaths(shard, model.path, prepared.path, accepted.path)
    counts = judge.run(judge.JudgeFilterSettings.parse(settings), paths)
    accepted.metadata.update({"read": counts.read, "kept": counts.kept, "quarantined": counts.quarantined})


@dsl.component(base_image=image("data"), install_kfp_package=False)
def bilingual_set_op(
    settings: str,
    teacher: dsl.Input[list[dsl.Dataset]],
    judged: dsl.Input[list[dsl.Dataset]],
    bilingual: dsl.Output[dsl.Dataset],
) -> None:
    """The translator's training set from every teacher shard and every judged shard.

    Args:
        settings: this stage's settings (JSON: the translator's prompts, directions, held-out share).
        teacher: every teacher shard.
        judged: every judge shard.
        bilingual: train.parquet and heldout.parquet of chat examples, and counts.
    """
    from hala.stages import bilingual as stage

    result = stage.run(
        stage.BilingualSettings.parse(settings),
        [t.path for t in teacher],
        [j.path for j in judged],
        bilingual.path,
    )
    bilingual.metadata.update(
        {"train_examples": result.counts.train_examples, "heldout_examples": result.counts.heldout_examples}
    )


@dsl.component(base_image=image("translate"), install_kfp_package=False)
def corpus_translate_op(
    settings: str,
    shard: int,
    model: dsl.Input[dsl.Model],
    prepared: dsl.Input[dsl.Dataset],
    translated: dsl.Output[dsl.Dataset],
) -> None:
    """One shard of an English instruction source through the translator, turn by turn.

    Args:
        settings: this stage's settings (JSON: the source, the translator's prompt, engine, checks, shards).
        shard: which shard of the prepared source.
        model: the trained translator.
        prepared: the prepared source.
        translated: the shard's Arabic conversations, quarantine and counts.
    """
    from hala.stages import corpus_translate
    from hala.stages.shards import ShardPaths

    paths = ShardPaths(shard, model.path, prepared.path, translated.path)
    counts = corpus_translate.run(corpus_translate.CorpusTranslateSettings.parse(settings), paths)
    translated.metadata.update({"read": counts.read, "kept": counts.kept, "quarantined": counts.quarantined})
