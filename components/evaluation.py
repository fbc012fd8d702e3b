"""Components of evaluation: benchmarks, contamination, translator quality, report tables and gates.

No `from __future__ import annotations` here: KFP reads the real annotation objects. Tables reach
the Kubeflow UI as Markdown outputs and every score as a KFP metric.
"""

from kfp import dsl

from hala_components.images import image

DATA_IMAGE, EVALUATE_IMAGE, TRANSLATE_IMAGE = image("data"), image("evaluate"), image("translate")


@dsl.component(base_image=EVALUATE_IMAGE, install_kfp_package=False)
def evaluate_op(
    preset_json: str,
    kfp_run_id: str,
    role: str,
    variant: str,
    model: dsl.Input[dsl.Model],
    scores: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
) -> None:
    """The six Arabic benchmarks (LightEval) on one model: base, fine-tune or merged."""
    from hala.evaluation import stages

    for name, value in stages.evaluate(
        preset_json, kfp_run_id, role, variant, model.path, scores.path
    ).items():
        metrics.log_metric(f"{variant}.{name}", value)


@dsl.component(base_image=EVALUATE_IMAGE, install_kfp_package=False)
def contamination_op(
    preset_json: str,
    kfp_run_id: str,
    corpus: dsl.Input[dsl.Dataset],
    bilingual: dsl.Input[dsl.Dataset],
    mmlu: dsl.Input[dsl.Dataset],
    report: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
) -> None:
    """N-gram overlap of the training corpora with every evaluation item, per benchmark."""
    from hala.evaluation import stages

    result = stages.contamination(
        preset_json, kfp_run_id, corpus.path, bilingual.path, mmlu.path, report.path
    )
    for bench, row in result.items():
        metrics.log_metric(f"{bench}.fraction", float(row["fraction"]))


@dsl.component(base_image=TRANSLATE_IMAGE, install_kfp_package=False)
def translation_eval_op(
    preset_json: str,
    kfp_run_id: str,
    system: str,
    model: dsl.Input[dsl.Model],
    mmlu: dsl.Input[dsl.Dataset],
    mmmlu: dsl.Input[dsl.Dataset],
    result: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
) -> None:
    """One system translates the sampled MMLU questions; BLEU, chrF++ and ROUGE-L against MMMLU."""
    from hala.evaluation import stages

    scored = stages.translation_eval(
        preset_json, kfp_run_id, system, model.path, mmlu.path, mmmlu.path, result.path
    )
    for key in ("bleu", "chrf", "rouge_l", "rouge_l_arabic"):
        metrics.log_metric(f"{system}.{key}", float(scored[key]))


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def benchmark_report_op(
    preset_json: str,
    kfp_run_id: str,
    role: str,
    model_version: str,
    base: dsl.Input[dsl.Dataset],
    finetuned: dsl.Input[dsl.Dataset],
    merged: dsl.Input[dsl.Dataset],
    contamination: dsl.Input[dsl.Dataset],
    table: dsl.Output[dsl.Markdown],
    report: dsl.Output[dsl.Dataset],
) -> str:
    """Table 1 for one size, with the bar chart; gates the model version; outputs the verdict."""
    from pathlib import Path

    from hala.evaluation import stages

    dirs = {"base": base.path, "finetuned": finetuned.path, "merged": merged.path}
    done = stages.benchmark_report(
        preset_json, kfp_run_id, role, dirs, contamination.path, model_version, report.path
    )
    Path(table.path).write_text(done["markdown"], encoding="utf-8")
    return str(done["verdict"])


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def translation_report_op(
    preset_json: str,
    kfp_run_id: str,
    translator_version: str,
    translator_base: dsl.Input[dsl.Dataset],
    translator: dsl.Input[dsl.Dataset],
    teacher: dsl.Input[dsl.Dataset],
    teacher_fp8: dsl.Input[dsl.Dataset],
    table: dsl.Output[dsl.Markdown],
    report: dsl.Output[dsl.Dataset],
) -> str:
    """Table 2 over the four systems; gates the translator's model version; outputs the verdict."""
    from pathlib import Path

    from hala.evaluation import stages

    dirs = {
        "translator_base": translator_base.path,
        "translator": translator.path,
        "teacher": teacher.path,
        "teacher_fp8": teacher_fp8.path,
    }
    done = stages.translation_report(preset_json, kfp_run_id, dirs, translator_version, report.path)
    Path(table.path).write_text(done["markdown"], encoding="utf-8")
    return str(done["verdict"])
