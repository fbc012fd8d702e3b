"""Stage ``judge_filter``: the strict bilingual judge over one OPUS-100 shard (report section 2.3).

Accepted pairs go out; rejected and unreadable ones are quarantined with the verdict as the reason
(the judge's rejects are its filter, so they do not count toward the shard's quarantine guard).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from hala.config import Preset
from hala.stages.shards import ShardCounts, ShardPaths, ShardSettings, run_shard, shard_fields
from hala.translate.resume import ShardResult


class JudgeFilterSettings(ShardSettings):
    """The judge prompt (``{ar}``, ``{en}``) and the share of label mass below which it cannot read."""

    prompt: str
    min_label_mass: float


def settings(preset: Preset) -> JudgeFilterSettings:
    """The ``judge_filter`` settings (one slice for every shard)."""
    return JudgeFilterSettings(
        prompt=preset.judge.prompt,
        min_label_mass=preset.judge.min_label_mass,
        **shard_fields(preset, preset.judge.engine),
    )


def _make_judge(model_dir: str, settings: JudgeFilterSettings) -> Any:
    from hala.judge import JudgeSettings, TransformersJudge, VLLMJudge
    from hala.translate.factory import make_engine

    judge = JudgeSettings(prompt=settings.prompt, min_label_mass=settings.min_label_mass)
    if settings.engine.kind == "vllm":
        engine = make_engine(model_dir, settings.engine)
        return VLLMJudge(engine.llm, judge)  # type: ignore[attr-defined]
    return TransformersJudge(Path(model_dir), judge)


def run(settings: JudgeFilterSettings, paths: ShardPaths) -> ShardCounts:
    """Judge one OPUS shard; counts per verdict go to the stage run."""
    from hala.judge import verdict_counts
    from hala.translate.conversations import TRANSLATION_QUARANTINE_SCHEMA
    from hala.translate.resume import process_shard

    def shard(records: pa.Table, work: Path) -> tuple[ShardResult, dict[str, float]]:
        judges: list[Any] = []
        verdicts: list[Any] = []

        def process(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
            if not judges:
                judges.append(_make_judge(paths.model_dir, settings))
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
        size = settings.engine.checkpoint_records
        result = process_shard(records, work, process, batch_size=size, schemas=schemas)
        extra = {f"verdict.{k}": v for k, v in verdict_counts(verdicts).items()} if verdicts else {}
        return result, extra

    return run_shard("judge_filter", "judge", settings, paths, shard, exempt=frozenset({"reject"}))
