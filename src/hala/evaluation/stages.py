"""Stage entry points of evaluation: benchmarks, contamination, translator quality, reports and gates."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import mlflow

from hala import tracking
from hala.config import Preset
from hala.evaluation.report import bar_chart, benchmark_table, translation_table, write_outputs

VARIANTS = ("base", "finetuned", "merged")


def evaluate(
    preset_json: str, kfp_run_id: str, role: str, variant: str, model_dir: str, out_dir: str
) -> dict[str, float]:
    """The six Arabic benchmarks through LightEval on one model; scores per benchmark plus ``average``."""
    from hala.evaluation.lighteval_runner import EvalSettings, VllmOptions, run_evaluation

    preset = Preset.model_validate_json(preset_json)
    cfg = preset.eval
    engine = cfg.engine
    settings = EvalSettings(
        backend="vllm" if engine.kind == "vllm" else "transformers",
        data_root=cfg.data_root,
        max_samples=cfg.max_samples,
        batch_size=engine.batch_size,
        vllm=VllmOptions(
            tensor_parallel_size=engine.tensor_parallel_size,
            gpu_memory_utilization=engine.gpu_memory_utilization,
            max_model_length=engine.max_model_len,
            enable_prefix_caching=engine.enable_prefix_caching,
        ),
    )
    parent_run_id = tracking.parent_run_of(preset_json, kfp_run_id)
    with tracking.stage_run(parent_run_id, f"evaluate-{role}-{variant}"):
        report = run_evaluation(model_dir, Path(out_dir), cfg.benchmarks, settings)
        mlflow.log_params({"eval.role": role, "eval.variant": variant, "eval.backend": settings.backend})
        mlflow.log_metrics({f"eval.{k}": v for k, v in report.scores.items()})
        mlflow.log_metrics({f"eval.samples.{k}": v for k, v in report.samples.items()})
        mlflow.log_artifact(str(Path(out_dir) / "scores.json"), "eval")
    return report.scores


def benchmark_texts(keys: Sequence[str], data_root: str | None) -> dict[str, list[str]]:
    """Every evaluation item of each benchmark as one text (all its string fields), for the overlap check."""
    from datasets import load_dataset

    from hala.evaluation.lighteval_runner import task_configs

    texts: dict[str, list[str]] = {}
    for key in keys:
        items: list[str] = []
        for config in task_configs(key, Path(data_root) if data_root else None):
            for split in config.evaluation_splits:
                rows = load_dataset(config.hf_repo, config.hf_subset, split=split)
                items += [_row_text(row) for row in rows]
        texts[key] = items
    return texts


def _row_text(row: dict[str, Any]) -> str:
    parts: list[str] = []
    for value in row.values():
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts += [v for v in value if isinstance(v, str)]
    return "\n".join(parts)


def _training_texts(corpus_dir: str, bilingual_dir: str) -> Iterator[str]:
    from hala.evaluation.contamination import iter_record_texts

    files = sorted(Path(corpus_dir).glob("*.parquet")) + sorted(Path(bilingual_dir).glob("*.parquet"))
    return iter_record_texts(files)


def contamination(
    preset_json: str, kfp_run_id: str, corpus_dir: str, bilingual_dir: str, mmlu_dir: str, out_dir: str
) -> dict[str, dict[str, float | int]]:
    """N-gram overlap of the training corpora (Arabic corpus + bilingual set) with every evaluation item."""
    from hala.evaluation.contamination import contamination_report
    from hala.evaluation.translation import items_from_records
    from hala.prepare import read_records

    preset = Preset.model_validate_json(preset_json)
    cfg = preset.eval
    benchmarks = benchmark_texts(cfg.benchmarks, cfg.data_root)
    benchmarks["mmlu"] = [item.text() for item in items_from_records(read_records(Path(mmlu_dir)))]
    parent_run_id = tracking.parent_run_of(preset_json, kfp_run_id)
    with tracking.stage_run(parent_run_id, "contamination"):
        report = contamination_report(
            _training_texts(corpus_dir, bilingual_dir),
            benchmarks,
            cfg.contamination_n,
            cfg.contamination_min_words,
        )
        mlflow.log_params(
            {"contamination.n": cfg.contamination_n, "contamination.min_words": cfg.contamination_min_words}
        )
        for bench, row in report.items():
            mlflow.log_metrics({f"contamination.{bench}.{k}": float(v) for k, v in row.items()})
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "contamination.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        mlflow.log_artifact(str(out / "contamination.json"))
    return report


def translation_eval(
    preset_json: str,
    kfp_run_id: str,
    system: str,
    model_dir: str,
    mmlu_dir: str,
    mmmlu_dir: str,
    out_dir: str,
) -> dict[str, Any]:
    """Table 2: one system translates the sampled MMLU questions; scored against MMMLU's Arabic."""
    from hala.evaluation.translation import direct_translate_fn, run_benchmark, system_prompt
    from hala.prepare import read_records
    from hala.translate.stages import make_engine

    preset = Preset.model_validate_json(preset_json)
    engine_cfg = preset.teacher.engine if system.startswith("teacher") else preset.corpus.engine
    prompt = system_prompt(preset.eval.translation_prompts, system)
    parent_run_id = tracking.parent_run_of(preset_json, kfp_run_id)
    with tracking.stage_run(parent_run_id, f"translation_eval-{system}"):
        translate = direct_translate_fn(make_engine(model_dir, engine_cfg), prompt, engine_cfg.max_new_tokens)
        result = run_benchmark(
            system,
            translate,
            prompt,
            read_records(Path(mmlu_dir)),
            read_records(Path(mmmlu_dir)),
            preset.eval.mmlu_questions,
            preset.eval.seed,
            out_dir,
        )
        mlflow.log_params({"translation.system": system, "translation.prompt": prompt})
        mlflow.log_metrics(
            {
                f"translation.{k}": float(result[k])
                for k in ("bleu", "chrf", "rouge_l", "rouge_l_arabic", "n", "failed")
            }
        )
        mlflow.log_artifacts(result["dir"], f"translation/{system}")
    (Path(out_dir) / "result.json").write_text(
        json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    return result


def benchmark_report(
    preset_json: str,
    kfp_run_id: str,
    role: str,
    score_dirs: dict[str, str],
    contamination_dir: str,
    model_version: str,
    out_dir: str,
) -> dict[str, Any]:
    """Table 1 for one size (base, fine-tune, merged, deltas) and the gate verdict on its model version."""
    from hala.evaluation.contamination import contamination_fractions
    from hala.evaluation.gates import evaluate_gates, record_verdict

    preset = Preset.model_validate_json(preset_json)
    # LightEval's accuracies are fractions; tables and gates speak points (0-100).
    scores = {
        v: {
            k: 100 * s
            for k, s in json.loads((Path(score_dirs[v]) / "scores.json").read_text())["scores"].items()
        }
        for v in VARIANTS
    }
    report = json.loads((Path(contamination_dir) / "contamination.json").read_text())
    # a student answers for the Arabic benchmarks (the mmlu row is the translator benchmark's)
    fractions = {k: v for k, v in contamination_fractions(report).items() if k in preset.eval.benchmarks}
    verdict = evaluate_gates(preset.eval.gates, scores, contamination=fractions)
    name = preset.students[role].registered_name
    table = benchmark_table(scores, preset.eval.benchmarks, role, preset.students[role].base.id, name)
    parent_run_id = tracking.parent_run_of(preset_json, kfp_run_id)
    with tracking.stage_run(parent_run_id, f"report-{role}"):
        record_verdict(tracking.registry_client(), name, model_version, verdict)
        title = f"HALA {role}: Arabic benchmarks (accuracy, %), beside the report's Table 1"
        paths = write_outputs(table, Path(out_dir), title)
        paths["chart"] = bar_chart(scores, preset.eval.benchmarks, Path(out_dir) / "chart.png", title)
        for path in paths.values():
            mlflow.log_artifact(str(path), "report")
        mlflow.log_metrics({f"eval.{v}.{k}": s for v, row in scores.items() for k, s in row.items()})
        mlflow.set_tags({"hala.gate.verdict": verdict.verdict, "hala.model": f"{name}/{model_version}"})
    _tag_version_metrics(name, model_version, {"eval.average": scores["merged"]["average"]})
    return _outcome(table, verdict, paths, f"{name} version {model_version}")


def translation_report(
    preset_json: str, kfp_run_id: str, result_dirs: dict[str, str], translator_version: str, out_dir: str
) -> dict[str, Any]:
    """Table 2 over every system, and the translator's chrF++ gate on its model version."""
    from hala.evaluation.gates import record_verdict, translator_verdict

    preset = Preset.model_validate_json(preset_json)
    results = {s: json.loads((Path(d) / "result.json").read_text()) for s, d in result_dirs.items()}
    table = translation_table(results)
    verdict = translator_verdict(preset.eval.gates, float(results["translator"]["chrf"]))
    parent_run_id = tracking.parent_run_of(preset_json, kfp_run_id)
    with tracking.stage_run(parent_run_id, "report-translation"):
        record_verdict(
            tracking.registry_client(), preset.translator.registered_name, translator_version, verdict
        )
        paths = write_outputs(
            table, Path(out_dir), "Table 2: EN->AR on sampled MMLU questions vs MMMLU, beside the report's"
        )
        for path in paths.values():
            mlflow.log_artifact(str(path), "report")
    _tag_version_metrics(
        preset.translator.registered_name,
        translator_version,
        {"translation.chrf": results["translator"]["chrf"]},
    )
    return _outcome(
        table, verdict, paths, f"{preset.translator.registered_name} version {translator_version}"
    )


def _outcome(table: Any, verdict: Any, paths: dict[str, Path], model: str) -> dict[str, Any]:
    """What a report stage returns: the table as markdown with the gate verdict under it."""
    why = f": {'; '.join(verdict.reasons)}" if verdict.reasons else ""
    markdown = (
        paths["markdown"].read_text(encoding="utf-8")
        + f"\n**Gate verdict on {model}: {verdict.verdict}**{why}\n"
    )
    return {
        "table": table,
        "verdict": verdict.verdict,
        "reasons": verdict.reasons,
        "markdown": markdown,
        "paths": {k: str(p) for k, p in paths.items()},
    }


def _tag_version_metrics(name: str, version: str, metrics: dict[str, float]) -> None:
    """Key metrics as model version tags (what `hala models` lists)."""
    client = tracking.registry_client()
    for key, value in metrics.items():
        client.set_model_version_tag(name, version, key, f"{value:.2f}")
