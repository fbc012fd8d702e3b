"""What the fan-out stages share: one shard in a durable work folder, logged, guarded, published.

A shard task works in a folder that outlives a retried task (the work volume on the cluster, a local
folder here), keyed by its settings and the runs that produced its inputs, so a retry, or a rerun
with the same inputs, resumes from what an earlier attempt wrote. The finished files are then
copied into the task's output folder.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hala.config import EngineConfig, Preset, QualityConfig
from hala.stages.context import Stage, open_stage, work_key, work_root
from hala.stages.settings import StageSettings
from hala.translate.resume import OUTPUT, QUARANTINE, ShardResult


class ShardSettings(StageSettings):
    """Settings every generating shard stage has: the engine, the output checks, the shards."""

    engine: EngineConfig
    quality: QualityConfig
    seed: int
    num_shards: int
    work_root: str  # the work volume's mount point (``HALA_WORK_ROOT`` wins when set)


def shard_fields(preset: Preset, engine: EngineConfig) -> dict[str, Any]:
    """The :class:`ShardSettings` fields of a stage that generates with ``engine``."""
    return {
        "engine": engine,
        "quality": preset.quality,
        "seed": preset.seed,
        "num_shards": preset.data.num_shards,
        "work_root": preset.cluster.work_root,
    }


class TranslateSettings(ShardSettings):
    """A shard stage that translates: its prompt (``{x}``: the text) too."""

    prompt: str


@dataclass(frozen=True)
class ShardPaths:
    """One shard task's inputs and output: the model, the prepared source, the output folder."""

    shard: int
    model_dir: str
    prepared_dir: str
    out_dir: str


@dataclass(frozen=True)
class ShardCounts:
    """What a shard task did: rows read, kept, quarantined, and resumed from an earlier attempt."""

    read: int
    kept: int
    quarantined: int
    resumed: int


# (records, work folder) -> the shard's result and extra metrics
ShardRunner = Callable[[pa.Table, Path], tuple[ShardResult, dict[str, float]]]


def shard_records(prepared_dir: str | Path, shard: int, num_shards: int) -> pa.Table:
    """One shard of a prepared source."""
    from hala.prepare import shard_name

    return pq.read_table(Path(prepared_dir) / "shards" / shard_name(shard, num_shards))


def run_shard(
    name: str,
    prefix: str,
    settings: ShardSettings,
    paths: ShardPaths,
    run: ShardRunner,
    exempt: frozenset[str] = frozenset(),
) -> ShardCounts:
    """Run one shard of a stage in its work folder, log it as a stage run, publish its outputs.

    The shard stops (after logging its counts) when it quarantined more than
    ``quality.max_quarantine_fraction`` of its records for reasons not in ``exempt``.
    """
    from hala.prepare import check_quarantine

    records = shard_records(paths.prepared_dir, paths.shard, settings.num_shards)
    inputs = [paths.model_dir, paths.prepared_dir]
    key = work_key(settings.to_json(), inputs)
    work = work_root(settings.work_root) / name / key / f"shard-{paths.shard:05d}"
    with open_stage(f"{name}-{paths.shard}", inputs=inputs, outputs=[paths.out_dir]) as stage:
        start = time.perf_counter()
        result, extra = run(records, work)
        _log_shard(stage, prefix, work, result, time.perf_counter() - start, {"shard": paths.shard, **extra})
        check_quarantine(
            f"{name} shard {paths.shard}",
            result.read,
            pq.read_table(work / QUARANTINE),
            settings.quality.max_quarantine_fraction,
            exempt=exempt,
        )
        publish(work, Path(paths.out_dir))
    return ShardCounts(result.read, result.kept, result.quarantined, result.resumed)


def _log_shard(
    stage: Stage, prefix: str, work: Path, result: ShardResult, seconds: float, extra: dict[str, float]
) -> None:
    from hala.prepare import count_reasons

    reasons = count_reasons(pq.read_table(work / QUARANTINE))
    metrics: dict[str, float] = {
        "read": result.read,
        "kept": result.kept,
        "quarantined": result.quarantined,
        "resumed": result.resumed,
    }
    metrics |= {f"quarantined.{k}": v for k, v in reasons.items()} | {"seconds": seconds, **extra}
    stage.log_metrics({f"{prefix}.{k}": v for k, v in metrics.items()})
    summary = {
        "stage": prefix,
        **asdict(result),
        "quarantined_by_reason": reasons,
        "seconds": seconds,
        **extra,
    }
    (work / "counts.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def publish(work_dir: Path, out_dir: Path) -> None:
    """Copy a finished shard from its durable work folder into the task's output folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (OUTPUT, QUARANTINE, "counts.json"):
        shutil.copyfile(work_dir / name, out_dir / name)


def translate_shard(
    records: pa.Table,
    work: Path,
    model_dir: str,
    settings: TranslateSettings,
    finish: Callable[[pa.Table], pa.Table],
    schema: pa.Schema,
) -> ShardResult:
    """Translate a shard's conversations turn by turn in resumable batches; ``finish`` shapes the rows."""
    from hala.translate.conversations import TRANSLATION_QUARANTINE_SCHEMA, translate_records
    from hala.translate.engines import Engine
    from hala.translate.factory import make_engine, translate_settings
    from hala.translate.resume import process_shard

    engine_cfg = settings.engine
    engine: list[Engine] = []  # loaded on the first batch: a shard already done loads nothing
    runner = translate_settings(engine_cfg, settings.quality, settings.seed, settings.prompt)

    def process(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        if not engine:
            engine.append(make_engine(model_dir, engine_cfg))
        translated, quarantine = translate_records(engine[0], batch, runner)
        return finish(translated), quarantine

    schemas = (schema, TRANSLATION_QUARANTINE_SCHEMA)
    return process_shard(records, work, process, batch_size=engine_cfg.checkpoint_records, schemas=schemas)


def run_translation(
    name: str,
    prefix: str,
    settings: TranslateSettings,
    paths: ShardPaths,
    finish: Callable[[pa.Table], pa.Table],
    schema: pa.Schema,
) -> ShardCounts:
    """One shard of a translating stage (teacher or corpus): translate, log, guard, publish."""

    def shard(records: pa.Table, work: Path) -> tuple[ShardResult, dict[str, float]]:
        return translate_shard(records, work, paths.model_dir, settings, finish, schema), {}

    return run_shard(name, prefix, settings, paths, shard)
