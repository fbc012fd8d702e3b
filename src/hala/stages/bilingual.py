"""Stage ``bilingual_set``: the translator's training set (report section 2.4).

The teacher's tuples give two pairs each (question, response) and the judge's accepted OPUS pairs
one each; pairs are deduplicated and each becomes one chat example per direction in
``translator.directions``, with a held-out split. The judge's acceptance over all shards is logged
beside the report's (439,592 of ~1M).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from hala.bilingual import BilingualCounts
from hala.config import Preset
from hala.stages.settings import StageSettings


class BilingualSettings(StageSettings):
    """The translator's prompts and directions, and the held-out share."""

    prompt_en_ar: str
    prompt_ar_en: str | None
    directions: list[Literal["en-ar", "ar-en"]]
    heldout_fraction: float


def settings(preset: Preset) -> BilingualSettings:
    """The ``bilingual_set`` settings."""
    t = preset.translator
    return BilingualSettings(
        prompt_en_ar=t.prompt_en_ar,
        prompt_ar_en=t.prompt_ar_en,
        directions=t.directions,
        heldout_fraction=t.heldout_fraction,
    )


@dataclass(frozen=True)
class JudgeAcceptance:
    """The judge's verdicts over every shard, beside the report's."""

    judged: int
    accepted: int
    acceptance_rate: float
    report_accepted: int
    report_acceptance_rate: float

    def metrics(self) -> dict[str, float]:
        """As ``judge.*`` metrics."""
        return {f"judge.{k}": float(v) for k, v in asdict(self).items()}


def judge_acceptance(judged_dirs: Sequence[str]) -> JudgeAcceptance:
    """The judge's acceptance over every shard, beside the report's (439,592 of ~1M, section 2.3)."""
    from hala import reference

    judged = accepted = 0
    for folder in judged_dirs:
        counts = json.loads((Path(folder) / "counts.json").read_text())
        judged, accepted = judged + int(counts["read"]), accepted + int(counts["kept"])
    return JudgeAcceptance(
        judged=judged,
        accepted=accepted,
        acceptance_rate=accepted / judged if judged else 0.0,
        report_accepted=reference.JUDGE_ACCEPTED,
        report_acceptance_rate=reference.JUDGE_ACCEPTANCE_RATE,
    )


@dataclass(frozen=True)
class BilingualResult:
    """The examples built and the judge's acceptance."""

    counts: BilingualCounts
    teacher_rows: int
    opus_accepted: int
    judge: JudgeAcceptance


def run(
    settings: BilingualSettings, teacher_dirs: Sequence[str], judged_dirs: Sequence[str], out_dir: str
) -> BilingualResult:
    """Build ``train.parquet`` and ``heldout.parquet`` in ``out_dir`` from every shard, streamed."""
    from hala.bilingual import build_bilingual_set
    from hala.stages.context import open_stage

    out = Path(out_dir)
    with open_stage("bilingual_set", inputs=[*teacher_dirs, *judged_dirs], outputs=[out_dir]) as stage:
        built = build_bilingual_set(
            teacher_dirs,
            judged_dirs,
            out,
            settings.prompt_en_ar,
            settings.prompt_ar_en,
            settings.heldout_fraction,
            settings.directions,
        )
        counts, judge = built.counts, judge_acceptance(judged_dirs)
        result = BilingualResult(counts, built.teacher_rows, built.opus_accepted, judge)
        stage.log_metrics(
            {
                **judge.metrics(),
                "bilingual.pairs_in": counts.pairs_in,
                "bilingual.train_examples": counts.train_examples,
                "bilingual.heldout_examples": counts.heldout_examples,
                **{f"bilingual.dropped.{k}": v for k, v in counts.dropped.items()},
            }
        )
        summary = {
            "stage": "bilingual",
            **asdict(counts),
            "teacher_rows": built.teacher_rows,
            "opus_accepted": built.opus_accepted,
            **judge.metrics(),
        }
        (out / "counts.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return result
