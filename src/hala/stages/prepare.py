"""Stage ``prepare``: read one source, validate, normalise, quarantine and shard it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from hala.config import Preset
from hala.prepare import SourceCounts
from hala.stages.context import Stage, open_stage
from hala.stages.settings import StageSettings


class PrepareSettings(StageSettings):
    """Where one source is read from and how it is sharded and guarded."""

    source: str
    location: str  # a local folder of data files, or the hub id
    revision: str | None
    limit: int | None
    num_shards: int
    max_quarantine_fraction: float


def settings(preset: Preset, *, source: str) -> PrepareSettings:
    """The ``prepare`` settings of one source."""
    from hala.sources import get_source

    spec = get_source(source)
    own = preset.data.sources[source]
    return PrepareSettings(
        source=source,
        location=str(Path(preset.data.root) / source) if preset.data.root else spec.hub_id,
        revision=own.revision,
        limit=own.limit,
        num_shards=preset.data.num_shards,
        max_quarantine_fraction=preset.data.max_quarantine_fraction,
    )


def run(settings: PrepareSettings, out_dir: str | Path) -> SourceCounts:
    """Prepare one source into ``out_dir``, as a stage run of the pipeline run."""
    import pyarrow.parquet as pq

    from hala.prepare import check_quarantine, prepare_source
    from hala.sources import get_source

    spec = get_source(settings.source)
    with open_stage(f"prepare-{settings.source}", outputs=[out_dir]) as stage:
        counts = prepare_source(
            spec,
            settings.location,
            Path(out_dir),
            num_shards=settings.num_shards,
            limit=settings.limit,
            revision=settings.revision,
        )
        log_source_counts(stage, counts)
        check_quarantine(
            f"source {settings.source} ({spec.hub_id})",
            counts.read,
            pq.read_table(Path(out_dir) / "quarantine.parquet"),
            settings.max_quarantine_fraction,
            exempt=spec.selections,
        )
    return counts


def log_source_counts(stage: Stage, counts: SourceCounts) -> None:
    """Counts as metrics (on the stage run and the parent), the source as a dataset input, the file."""
    import mlflow
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    from hala.tracking import log_input

    metrics = {"read": counts.read, "kept": counts.kept, "quarantined": sum(counts.quarantined.values())}
    metrics |= {f"quarantined.{reason}": n for reason, n in counts.quarantined.items()}
    stage.log_metrics({f"{counts.source}.{k}": v for k, v in metrics.items()}, on_parent=True)
    mlflow.log_params({"source": counts.source, "hub_id": counts.hub_id, "revision": counts.revision})
    source = HuggingFaceDatasetSource(path=counts.location, revision=counts.revision)
    # MetaDataset implements profile at run time; its base class only declares it abstract.
    dataset = MetaDataset(source=source, name=counts.hub_id, digest=counts.fingerprint[:16])  # type: ignore[abstract]
    log_input(dataset, "source")
    mlflow.log_dict(asdict(counts), f"counts/{counts.source}.json")
