"""Stage ``corpus``: the Arabic instruction corpus, assembled in one pass from every source's shards.

Report section 2.5: the translated instruction sets together (~4.5M samples at paper scale). The
corpus is written source by source with a parquet writer, so memory is bounded by a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hala.config import Preset
from hala.corpus import CorpusCounts
from hala.stages.settings import StageSettings


class CorpusSettings(StageSettings):
    """The sources of the corpus, in the order they are written."""

    sources: list[str]


def settings(preset: Preset) -> CorpusSettings:
    """The ``corpus`` settings."""
    return CorpusSettings(sources=preset.corpus.sources)


def run(settings: CorpusSettings, parts: Mapping[str, Sequence[str]], out_dir: str) -> CorpusCounts:
    """Assemble every source's translated shards (``parts``: source -> shard folders) into ``out_dir``."""
    from hala.corpus import assemble_corpus
    from hala.stages.context import open_stage

    missing = [s for s in settings.sources if s not in parts]
    if missing:
        raise ValueError(f"corpus: no translated shards for {missing}; the graph must pass every source")
    inputs = [folder for source in settings.sources for folder in parts[source]]
    with open_stage("corpus", inputs=inputs, outputs=[out_dir]) as stage:
        counts = assemble_corpus({s: [Path(p) for p in parts[s]] for s in settings.sources}, Path(out_dir))
        stage.log_metrics({f"corpus.{source}.rows": n for source, n in counts.rows.items()})
    return counts
