"""Stage ``contamination``: n-gram overlap of the training corpora with every evaluation item.

The Arabic corpus and the bilingual set are streamed past the word n-grams of each benchmark's items
(and the translator benchmark's MMLU questions); the overlap per benchmark feeds the gates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hala.config import Preset
from hala.stages.settings import StageSettings


class ContaminationSettings(StageSettings):
    """The benchmarks, where they are read, and the n-gram check's length and minimum item length."""

    benchmarks: list[str]
    data_root: str | None
    n: int
    min_words: int


def settings(preset: Preset) -> ContaminationSettings:
    """The ``contamination`` settings."""
    cfg = preset.eval
    return ContaminationSettings(
        benchmarks=cfg.benchmarks,
        data_root=cfg.data_root,
        n=cfg.contamination_n,
        min_words=cfg.contamination_min_words,
    )


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


def run(
    settings: ContaminationSettings, corpus_dir: str, bilingual_dir: str, mmlu_dir: str, out_dir: str
) -> dict[str, dict[str, float]]:
    """The overlap per benchmark (items, checked, skipped, contaminated, fraction); also in ``out_dir``."""
    import mlflow

    from hala.evaluation.contamination import contamination_report
    from hala.evaluation.translation import items_from_records
    from hala.prepare import read_records
    from hala.stages.context import open_stage

    benchmarks = benchmark_texts(settings.benchmarks, settings.data_root)
    benchmarks["mmlu"] = [item.text() for item in items_from_records(read_records(Path(mmlu_dir)))]
    inputs = [corpus_dir, bilingual_dir, mmlu_dir]
    with open_stage("contamination", inputs=inputs, outputs=[out_dir]) as stage:
        report = contamination_report(
            _training_texts(corpus_dir, bilingual_dir), benchmarks, settings.n, settings.min_words
        )
        mlflow.log_params({"contamination.n": settings.n, "contamination.min_words": settings.min_words})
        for bench, row in report.items():
            stage.log_metrics({f"contamination.{bench}.{k}": float(v) for k, v in row.items()})
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "contamination.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        mlflow.log_artifact(str(out / "contamination.json"))
    return {bench: {k: float(v) for k, v in row.items()} for bench, row in report.items()}
