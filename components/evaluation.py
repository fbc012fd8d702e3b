"""Components of evaluation: benchmarks, contamination, translator quality, report tables and gates.

No `from __future__ import annotations` here: KFP reads the real annotation objects. Tables reach
the Kubeflow UI as Markdown outputs and every score as a KFP metric.
"""

from kfp import dsl

from hala_components.images import image


@dsl.component(base_image=image("evaluate"), install_kfp_package=False)
def evaluate_op(
    settings: str,
    model: dsl.Input[dsl.Model],
    scores: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
) -> None:
    """The six Arabic benchmarks (LightEval) on one model: base, fine-tune or merged.

    Args:
        settings: this stage's settings (JSON: the size and variant, benchmarks, data, engine).
        model: the model to score.
        scores: scores.json and LightEval's results.
        metrics: each benchmark's accuracy and the average.
    """
    from hala.stages import evaluate
    from hala.stages.context import log_kfp_metrics

    cfg = evaluate.EvaluateSettings.parse(settings)
    scored = evaluate.run(cfg, model.path, scores.path).scores
    log_kfp_metrics(metrics, {f"{cfg.variant}.{name}": value for name, value in scored.items()})


@dsl.component(base_image=image("evaluate"), install_kfp_package=False)
def contamination_op(
    settings: str,
    corpus: dsl.Input[dsl.Dataset],
    bilingual: dsl.Input[dsl.Dataset],
    mmlu: dsl.Input[dsl.Dataset],
    report: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
) -> None:
    """N-gram overlap of the training corpora with every evaluation item, per benchmark.

    Args:
        settings: this stage's settings (JSON: the benchmarks, the n-gram length, the minimum item length).
        corpus: the Arabic corpus.
        bilingual: the translator's bilingual set.
        mmlu: the prepared MMLU questions (the translator benchmark).
        report: contamination.json.
        metrics: the contaminated fraction of each benchmark.
    """
    from hala.stages import contamination
    from hala.stages.context import log_kfp_metrics

    result = contamination.run(
        contamination.ContaminationSettings.parse(settings),
        corpus.path,
        bilingual.path,
        mmlu.path,
        report.path,
    )
    log_kfp_metrics(metrics, {f"{bench}.fraction": row["fraction"] for bench, row in result.items()})


@dsl.component(base_image=image("translate"), install_kfp_package=False)
def translation_eval_op(
    settings: str,
    model: dsl.Input[dsl.Model],
    mmlu: dsl.Input[dsl.Dataset],
    mmmlu: dsl.Input[dsl.Dataset],
    result: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
) -> None:
    """One system translates the sampled MMLU questions; BLEU, chrF++ and ROUGE-L against MMMLU.

    Args:
        settings: this stage's settings (JSON: the system, its fixed prompt, engine, sample size, seed).
        model: the system's model.
        mmlu: the prepared cais/mmlu test questions.
        mmmlu: the prepared openai/MMMLU AR_XY questions.
        result: the line-aligned texts, the prompt and result.json.
        metrics: the system's scores.
    """
    from hala.stages import translation_eval
    from hala.stages.context import log_kfp_metrics

    scored = translation_eval.run(
        translation_eval.TranslationEvalSettings.parse(settings),
        model.path,
        mmlu.path,
        mmmlu.path,
        result.path,
    )
    keys = ("bleu", "chrf", "rouge_l", "rouge_l_arabic")
    log_kfp_metrics(metrics, {f"{scored.system}.{key}": getattr(scored, key) for key in keys})


@dsl.component(base_image=image("data"), install_kfp_package=False)
def benchmark_report_op(
    settings: str,
    base: dsl.Input[dsl.Dataset],
    finetuned: dsl.Input[dsl.Dataset],
    merged: dsl.Input[dsl.Dataset],
    contamination: dsl.Input[dsl.Dataset],
    registered: dsl.Input[dsl.Artifact],
    table: dsl.Output[dsl.Markdown],
    report: dsl.Output[dsl.Dataset],
) -> str:
    """Table 1 for one size, with the bar chart; gates the model version.

    Args:
        settings: this stage's settings (JSON: the size, its names, the benchmarks, the gates).
        base: the base model's scores.
        finetuned: the fine-tune's scores.
        merged: the merged model's scores.
        contamination: the contamination report.
        registered: the merged model's registered version.
        table: Table 1 as the report lays it out, with the gate verdict.
        report: the table as markdown and CSV, and the chart.

    Returns:
        The gate verdict: pass or fail.
    """
    from pathlib import Path

    from hala.stages import benchmark_report

    dirs = {"base": base.path, "finetuned": finetuned.path, "merged": merged.path}
    done = benchmark_report.run(
        benchmark_report.BenchmarkReportSettings.parse(settings),
        dirs,
        contamination.path,
        registered.path,
        report.path,
    )
    Path(table.path).write_text(done.markdown, encoding="utf-8")
    return done.verdict


@dsl.component(base_image=image("data"), install_kfp_package=False)
def translation_report_op(
    settings: str,
    translator_base: dsl.Input[dsl.Dataset],
    translator: dsl.Input[dsl.Dataset],
    teacher: dsl.Input[dsl.Dataset],
    teacher_fp8: dsl.Input[dsl.Dataset],
    registered: dsl.Input[dsl.Artifact],
    fp8_check: dsl.Input[dsl.Dataset],
    table: dsl.Output[dsl.Markdown],
    report: dsl.Output[dsl.Dataset],
) -> str:
    """Table 2 over the four systems; gates the translator's model version.

    Args:
        settings: this stage's settings (JSON: the gates).
        translator_base: the LFM2 base's Table 2 result.
        translator: our translator's result.
        teacher: the teacher's result (FP16).
        teacher_fp8: the FP8 teacher's result.
        registered: the translator's registered version.
        fp8_check: the FP8 teacher's validation (its figures close the table).
        table: Table 2 as the report lays it out, with the gate verdict and the FP8 check.
        report: the table as markdown and CSV.

    Returns:
        The gate verdict: pass or fail.
    """
    from pathlib import Path

    from hala.stages import translation_report

    dirs = {
        "translator_base": translator_base.path,
        "translator": translator.path,
        "teacher": teacher.path,
        "teacher_fp8": teacher_fp8.path,
    }
    done = translation_report.run(
        translation_report.TranslationReportSettings.parse(settings),
        dirs,
        registered.path,
        fp8_check.path,
        report.path,
    )
    Path(table.path).write_text(done.markdown, encoding="utf-8")
    return done.verdict
