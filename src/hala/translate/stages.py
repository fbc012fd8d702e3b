"""Entry points of the translation stages, each logged as a nested MLflow run.

A shard stage works in ``work_dir``, a folder that outlives a retried task (a volume on the
cluster, a local folder here), so a retry resumes from what the failed attempt wrote; the finished
files are then copied into the task's output artifact ``out_dir``.

Components call these and nothing else: quantize, teacher_translate, judge_filter, bilingual_set,
corpus_translate.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq

from hala import tracking
from hala.config import EngineConfig, Preset
from hala.prepare import check_quarantine, count_reasons, read_records, shard_name
from hala.quantize import TimedTranslations
from hala.translate.conversations import (
    TEACHER_SCHEMA,
    TRANSLATED_SCHEMA,
    TRANSLATION_QUARANTINE_SCHEMA,
    teacher_tuples,
    translate_records,
)
from hala.translate.engines import (
    Engine,
    Generation,
    GenerationSettings,
    Message,
    TransformersEngine,
    VLLMEngine,
    VLLMSettings,
)
from hala.translate.quality import QualityRules
from hala.translate.resume import OUTPUT, QUARANTINE, ShardResult, process_shard
from hala.translate.runner import TranslateSettings, sampling_retry, translate_texts


def make_engine(model_dir: Path | str, cfg: EngineConfig) -> Engine:
    """The engine a preset asks for, loaded from a model folder."""
    if cfg.kind == "vllm":
        settings = VLLMSettings(
            tensor_parallel_size=cfg.tensor_parallel_size,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            enable_prefix_caching=cfg.enable_prefix_caching,
        )
        return VLLMEngine(model_dir, settings)
    return TransformersEngine(model_dir, batch_size=cfg.batch_size, max_model_len=cfg.max_model_len)


def translate_settings(
    preset: Preset, cfg: EngineConfig, prompt: str, target_script: str = "arabic"
) -> TranslateSettings:
    """The runner settings of a stage: its prompt and engine limits, the preset's output checks."""
    quality = preset.quality
    greedy = GenerationSettings(max_new_tokens=cfg.max_new_tokens, seed=preset.seed)
    retry = sampling_retry(greedy)
    rules = QualityRules(
        target_script=target_script,
        min_script_ratio=quality.min_script_ratio,
        max_compression_ratio=quality.max_compression_ratio,
        reject_truncated=quality.reject_truncated,
    )
    return TranslateSettings(
        prompt=prompt,
        max_input_tokens=cfg.max_input_tokens,
        generation=greedy,
        retry=retry,
        max_attempts=cfg.max_attempts,
        rules=rules,
    )


def _device() -> str:
    """Where this process generates: ``cuda`` with a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class _CountingEngine:
    """An engine that counts the tokens it generates."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.max_model_len = engine.max_model_len
        self.output_tokens = 0

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``, as the wrapped engine counts them."""
        return self.engine.count_tokens(text)

    def chat(self, conversations: Sequence[list[Message]], settings: GenerationSettings) -> list[Generation]:
        """The wrapped engine's generations; their completion tokens are added up."""
        generations = self.engine.chat(conversations, settings)
        self.output_tokens += sum(g.completion_tokens for g in generations)
        return generations


def translate_with_model(preset: Preset, model_dir: Path, texts: Sequence[str]) -> TimedTranslations:
    """Teacher-prompt translations of ``texts`` by one model (failed texts come back empty), timed warm.

    The engine loads and translates the first text once before the clock starts (vLLM's CUDA graphs,
    kernel selection), so the time is that of generation alone.
    """
    engine = make_engine(model_dir, preset.teacher.engine)
    settings = translate_settings(preset, preset.teacher.engine, preset.teacher.prompt)
    translate_texts(engine, texts[:1], settings)
    counting = _CountingEngine(engine)
    start = time.perf_counter()
    results = translate_texts(counting, texts, settings)
    seconds = time.perf_counter() - start
    return TimedTranslations([r.text or "" for r in results], counting.output_tokens, seconds)


def shard_records(prepared_dir: Path, shard_index: int, num_shards: int) -> pa.Table:
    """One shard of a prepared source."""
    return pq.read_table(prepared_dir / "shards" / shard_name(shard_index, num_shards))


def _log_shard(
    prefix: str, out_dir: Path, result: ShardResult, seconds: float, extra: dict[str, Any]
) -> None:
    reasons = count_reasons(pq.read_table(out_dir / QUARANTINE))
    metrics = {
        "read": result.read,
        "kept": result.kept,
        "quarantined": result.quarantined,
        "resumed": result.resumed,
    }
    metrics |= {f"quarantined.{k}": v for k, v in reasons.items()} | {"seconds": seconds, **extra}
    mlflow.log_metrics({f"{prefix}.{k}": float(v) for k, v in metrics.items()})
    summary = {
        "stage": prefix,
        **asdict(result),
        "quarantined_by_reason": reasons,
        "seconds": seconds,
        **extra,
    }
    (out_dir / "counts.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def _translate_shard(
    preset: Preset,
    records: pa.Table,
    out_dir: Path,
    model_dir: Path,
    cfg: EngineConfig,
    prompt: str,
    finish: Callable[[pa.Table], pa.Table],
    schema: pa.Schema,
) -> ShardResult:
    engine: list[Engine] = []  # loaded on the first batch: a shard already done loads nothing
    settings = translate_settings(preset, cfg, prompt)

    def process(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        if not engine:
            engine.append(make_engine(model_dir, cfg))
        translated, quarantine = translate_records(engine[0], batch, settings)
        return finish(translated), quarantine

    schemas = (schema, TRANSLATION_QUARANTINE_SCHEMA)
    return process_shard(records, out_dir, process, batch_size=cfg.checkpoint_records, schemas=schemas)


@dataclass(frozen=True)
class ShardTask:
    """One task of a fan-out stage: its preset, run, shard, model, input, work folder and output."""

    preset_json: str
    kfp_run_id: str
    work_root: str
    shard: int
    model_dir: str
    prepared_dir: str
    out_dir: str

    def preset(self) -> Preset:
        """The resolved preset of the run."""
        return Preset.model_validate_json(self.preset_json)

    def work_dir(self, stage: str) -> Path:
        """The durable work folder of this shard (shared by retries of the task)."""
        return Path(self.work_root) / self.kfp_run_id / stage / f"shard-{self.shard:05d}"


ShardRunner = Callable[[Preset, pa.Table, Path], tuple[ShardResult, dict[str, float]]]


def _shard_stage(
    task: ShardTask, stage: str, prefix: str, run: ShardRunner, exempt: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Run one shard of a stage in its work folder, log it as a nested run, publish the outputs.

    The shard stops (after logging its counts) when it quarantined more than the preset's
    ``quality.max_quarantine_fraction`` of its records for reasons not in ``exempt``.
    """
    preset = task.preset()
    records = shard_records(Path(task.prepared_dir), task.shard, preset.data.num_shards)
    work = task.work_dir(stage)
    parent_run_id = tracking.parent_run_of(task.preset_json, task.kfp_run_id)
    with tracking.stage_run(parent_run_id, f"{stage}-{task.shard}"):
        start = time.perf_counter()
        result, extra = run(preset, records, work)
        _log_shard(prefix, work, result, time.perf_counter() - start, {"shard": task.shard, **extra})
        check_quarantine(
            f"{stage} shard {task.shard}",
            result.read,
            pq.read_table(work / QUARANTINE),
            preset.quality.max_quarantine_fraction,
            exempt=exempt,
        )
    publish(work, Path(task.out_dir))
    return {
        "read": result.read,
        "kept": result.kept,
        "quarantined": result.quarantined,
        "resumed": result.resumed,
    }


def teacher_translate(task: ShardTask) -> dict[str, int]:
    """Stage 2: one OpenOrca shard through the FP8 teacher, as (instr, resp) EN/AR tuples."""

    def run(preset: Preset, records: pa.Table, work: Path) -> tuple[ShardResult, dict[str, float]]:
        cfg = preset.teacher.engine
        model = Path(task.model_dir)
        return _translate_shard(
            preset, records, work, model, cfg, preset.teacher.prompt, teacher_tuples, TEACHER_SCHEMA
        ), {}

    return _shard_stage(task, "teacher_translate", "teacher", run)


def corpus_translate(task: ShardTask, source: str) -> dict[str, int]:
    """Stage 5: one shard of an instruction source through the translator, turn by turn."""

    def run(preset: Preset, records: pa.Table, work: Path) -> tuple[ShardResult, dict[str, float]]:
        cfg, prompt = preset.corpus.engine, preset.translator.prompt_en_ar
        model = Path(task.model_dir)
        return _translate_shard(
            preset, records, work, model, cfg, prompt, lambda table: table, TRANSLATED_SCHEMA
        ), {}

    return _shard_stage(task, f"corpus_translate-{source}", f"corpus.{source}", run)


def publish(work_dir: Path, out_dir: Path) -> None:
    """Copy a finished shard from its durable work folder into the stage's output artifact."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (OUTPUT, QUARANTINE, "counts.json"):
        shutil.copyfile(work_dir / name, out_dir / name)


def read_outputs(dirs: Sequence[str]) -> pa.Table:
    """The merged ``output.parquet`` of several shard folders (a fan-in)."""
    return pa.concat_tables([pq.read_table(Path(d) / OUTPUT) for d in dirs])


__all__ = [
    "corpus_translate",
    "make_engine",
    "read_outputs",
    "read_records",
    "teacher_translate",
    "translate_settings",
]


def quantize(
    preset_json: str, parent_run_id: str, model_dir: str, opus_dir: str, out_dir: str
) -> dict[str, float]:
    """Stage 1: FP8-dynamic teacher, validated on the first OPUS pairs against the source model."""
    from hala import reference
    from hala.quantize import QuantizationGateError, quantize_fp8, validate_fp8

    preset = Preset.model_validate_json(preset_json)
    pairs = read_records(Path(opus_dir)).slice(0, preset.quant.validation_samples).to_pylist()
    sources = [row["messages"][0]["content"] for row in pairs]
    references = [row["messages"][1]["content"] for row in pairs]
    with tracking.stage_run(parent_run_id, "quantize"):
        quantize_fp8(Path(model_dir), Path(out_dir), ignore=preset.quant.ignore)
        mlflow.log_params(
            {
                "quant.scheme": preset.quant.scheme,
                "quant.ignore": ",".join(preset.quant.ignore),
                "quant.timing_device": _device(),
            }
        )
        mlflow.log_artifact(str(Path(out_dir) / "recipe.yaml"))
        try:
            report = validate_fp8(
                Path(model_dir),
                Path(out_dir),
                sources,
                references,
                translate=lambda model, texts: translate_with_model(preset, model, texts),
                max_chrf_drop=preset.quant.max_chrf_drop,
            )
        except QuantizationGateError as exc:  # record the failing numbers, then fail the stage
            mlflow.log_metrics({f"quant.{k}": v for k, v in exc.report.to_metrics().items()})
            raise
        metrics = {f"quant.{k}": v for k, v in report.to_metrics().items()}
        metrics["quant.report_speedup"] = reference.FP8_SPEEDUP
        mlflow.log_metrics(metrics)
    (Path(out_dir) / "validation.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def judge_filter(task: ShardTask) -> dict[str, int]:
    """Stage 3: the bilingual judge over one OPUS shard; accepted pairs out, the rest quarantined."""
    from hala.judge import JudgeSettings, TransformersJudge, verdict_counts

    def run(preset: Preset, records: pa.Table, work: Path) -> tuple[ShardResult, dict[str, float]]:
        settings = JudgeSettings(prompt=preset.judge.prompt, min_label_mass=preset.judge.min_label_mass)
        judges: list[Any] = []
        verdicts: list[Any] = []

        def process(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
            if not judges:
                judges.append(_make_judge(Path(task.model_dir), preset, settings, TransformersJudge))
            rows = batch.to_pylist()
            found = judges[0].judge(
                [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]
            )
            verdicts.extend(found)
            bad = [
                {"id": r["id"], "reason": j.verdict, "column": "translation"}
                for r, j in zip(rows, found, strict=True)
                if j.verdict != "accept"
            ]
            keep = pa.array([j.verdict == "accept" for j in found])
            return batch.filter(keep), pa.Table.from_pylist(bad, schema=TRANSLATION_QUARANTINE_SCHEMA)

        schemas = (records.schema, TRANSLATION_QUARANTINE_SCHEMA)
        size = preset.judge.engine.checkpoint_records
        result = process_shard(records, work, process, batch_size=size, schemas=schemas)
        extra = {f"verdict.{k}": v for k, v in verdict_counts(verdicts).items()} if verdicts else {}
        return result, extra

    return _shard_stage(task, "judge_filter", "judge", run, exempt=frozenset({"reject"}))


def _make_judge(model_dir: Path, preset: Preset, settings: Any, cpu_judge: Any) -> Any:
    if preset.judge.engine.kind == "vllm":
        from hala.judge import VLLMJudge

        engine = make_engine(model_dir, preset.judge.engine)
        return VLLMJudge(engine.llm, settings)  # type: ignore[attr-defined]
    return cpu_judge(model_dir, settings)


def judge_acceptance(judged_dirs: Sequence[str]) -> dict[str, float]:
    """The judge's acceptance over every shard, beside the report's (439,592 of ~1M, section 2.3)."""
    from hala import reference

    judged = accepted = 0
    for folder in judged_dirs:
        counts = json.loads((Path(folder) / "counts.json").read_text())
        judged, accepted = judged + int(counts["read"]), accepted + int(counts["kept"])
    return {
        "judge.judged": float(judged),
        "judge.accepted": float(accepted),
        "judge.acceptance_rate": accepted / judged if judged else 0.0,
        "judge.report_accepted": float(reference.JUDGE_ACCEPTED),
        "judge.report_acceptance_rate": reference.JUDGE_ACCEPTANCE_RATE,
    }


def bilingual_set(
    preset_json: str,
    parent_run_id: str,
    teacher_dirs: Sequence[str],
    judged_dirs: Sequence[str],
    out_dir: str,
) -> dict[str, Any]:
    """Stage 4 data: the translator's chat examples per direction, deduplicated, with a held-out split."""
    from hala.bilingual import build_examples, opus_pairs, teacher_pairs

    preset = Preset.model_validate_json(preset_json)
    teacher, accepted = read_outputs(teacher_dirs), read_outputs(judged_dirs)
    pairs = [*teacher_pairs(teacher), *opus_pairs(accepted)]
    with tracking.stage_run(parent_run_id, "bilingual_set"):
        train, heldout, counts = build_examples(
            iter(pairs),
            preset.translator.prompt_en_ar,
            preset.translator.prompt_ar_en,
            preset.translator.heldout_fraction,
            preset.translator.directions,
        )
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(train, out / "train.parquet")
        pq.write_table(heldout, out / "heldout.parquet")
        judge = judge_acceptance(judged_dirs)
        summary = {
            "stage": "bilingual",
            **asdict(counts),
            "teacher_rows": teacher.num_rows,
            "opus_accepted": accepted.num_rows,
            **judge,
        }
        mlflow.log_metrics(
            {
                **judge,
                "bilingual.pairs_in": counts.pairs_in,
                "bilingual.train_examples": counts.train_examples,
                "bilingual.heldout_examples": counts.heldout_examples,
                **{f"bilingual.dropped.{k}": v for k, v in counts.dropped.items()},
            }
        )
        (out / "counts.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
