"""Stage ``teacher_translate``: one OpenOrca shard through the FP8 teacher, as EN/AR tuples.

Each record's question and response are translated (report section 2.2: the teacher's minimal
prompt), giving ``<instr_en, instr_ar, resp_en, resp_ar>`` tuples for the bilingual set.
"""

from __future__ import annotations

from hala.config import Preset
from hala.stages.shards import ShardCounts, ShardPaths, TranslateSettings, run_translation, shard_fields


class TeacherSettings(TranslateSettings):
    """The teacher's prompt (``{x}``: the English text), engine and output checks."""


def settings(preset: Preset) -> TeacherSettings:
    """The ``teacher_translate`` settings (one slice for every shard)."""
    return TeacherSettings(prompt=preset.teacher.prompt, **shard_fields(preset, preset.teacher.engine))


def run(settings: TeacherSettings, paths: ShardPaths) -> ShardCounts:
    """Translate one OpenOrca shard with the (FP8) teacher into EN/AR tuples."""
    from hala.translate.conversations import TEACHER_SCHEMA, teacher_tuples

    return run_translation("teacher_translate", "teacher", settings, paths, teacher_tuples, TEACHER_SCHEMA)
