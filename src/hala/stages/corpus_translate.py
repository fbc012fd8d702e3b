"""Stage ``corpus_translate``: one shard of an English instruction source through the translator.

Conversations are translated turn by turn with the translator's EN->AR prompt (report section 2.5),
roles and system prompts kept.
"""

from __future__ import annotations

from hala.config import Preset
from hala.stages.shards import ShardCounts, ShardPaths, TranslateSettings, run_translation, shard_fields


class CorpusTranslateSettings(TranslateSettings):
    """The source, the translator's EN->AR prompt (``{x}``), its engine and the output checks."""

    source: str


def settings(preset: Preset, *, source: str) -> CorpusTranslateSettings:
    """The ``corpus_translate`` settings of one source (one slice for all its shards)."""
    return CorpusTranslateSettings(
        source=source, prompt=preset.translator.prompt_en_ar, **shard_fields(preset, preset.corpus.engine)
    )


def run(settings: CorpusTranslateSettings, paths: ShardPaths) -> ShardCounts:
    """Translate one shard of ``settings.source`` with the trained translator."""
    from hala.translate.conversations import TRANSLATED_SCHEMA

    name, prefix = f"corpus_translate-{settings.source}", f"corpus.{settings.source}"
    return run_translation(name, prefix, settings, paths, lambda table: table, TRANSLATED_SCHEMA)
