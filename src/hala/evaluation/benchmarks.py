"""The six benchmarks of the evaluate stage, as LightEval 0.13 defines them for the OALL v2 leaderboard.

The task configurations and prompt functions are LightEval's own
(``lighteval.tasks.multilingual.tasks.arabic``); this module only names which of them make up each
benchmark (the Open Arabic LLM Leaderboard v2 list without ALRAGE) and records the column schema of
each benchmark's hub dataset, which the fixture datasets reproduce and the local-data check enforces.

| key | LightEval tasks | hub dataset (split scored) |
|---|---|---|
| alghafa | ``alghafa:<9 native subsets>`` | OALL/AlGhafa-Arabic-LLM-Benchmark-Native (test) |
| arabic_mmlu | ``arabic_mmlu:<40 subjects>`` (not ``All``) | MBZUAI/ArabicMMLU (test) |
| arabic_exams | ``arabic_exams`` | OALL/Arabic_EXAMS (test) |
| madinah_qa | ``madinah_qa:<2 subsets>`` | MBZUAI/MadinahQA (test) |
| aratrust | ``aratrust:<8 categories>`` | asas-ai/AraTrust-categorized (train) |
| arabic_mmlu_ht | ``arabic_mmlu_ht:<57 subjects>`` | MBZUAI/human_translated_arabic_mmlu (test) |

Every task is scored zero-shot with LightEval's ``loglikelihood_acc`` under character-length
normalisation (the leaderboard's ``acc_norm``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hala.errors import HalaError

if TYPE_CHECKING:
    from lighteval.tasks.lighteval_task import LightevalTaskConfig

DataFormat = Literal["parquet", "csv"]

# Column types as written in the hub datasets (Arrow type names).
_STR, _INT, _STR_LIST = "string", "int64", "list<string>"
_ARABIC_MMLU_COLUMNS = {
    "ID": _INT,
    "Source": _STR,
    "Country": _STR,
    "Group": _STR,
    "Subject": _STR,
    "Level": _STR,
    "Question": _STR,
    "Context": _STR,
    "Answer Key": _STR,
    **{f"Option {i}": _STR for i in range(1, 6)},
}


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: its LightEval task prefix, hub dataset and the columns its prompt function reads."""

    key: str
    title: str
    hub_repo: str
    data_format: DataFormat
    columns: dict[str, str]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def read_columns(self) -> frozenset[str]:
        """Every column LightEval's prompt function may read (required or, when present, optional)."""
        return frozenset(self.required) | frozenset(self.optional)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.key: spec
    for spec in (
        BenchmarkSpec(
            key="alghafa",
            title="AlGhafa (native)",
            hub_repo="OALL/AlGhafa-Arabic-LLM-Benchmark-Native",
            data_format="parquet",
            # Subsets have two to five answer columns; label is the 0-based index as a string.
            columns={"query": _STR, **{f"sol{i}": _STR for i in range(1, 6)}, "label": _STR},
            required=("query", "label", "sol1", "sol2"),
            optional=("sol3", "sol4", "sol5"),
        ),
        BenchmarkSpec(
            key="arabic_mmlu",
            title="ArabicMMLU",
            hub_repo="MBZUAI/ArabicMMLU",
            data_format="csv",
            columns=_ARABIC_MMLU_COLUMNS,
            required=("Question", "Answer Key", "Option 1", "Option 2"),
            optional=("Option 3", "Option 4", "Option 5"),
        ),
        BenchmarkSpec(
            key="arabic_exams",
            title="EXAMS (Arabic)",
            hub_repo="OALL/Arabic_EXAMS",
            data_format="parquet",
            columns={
                "id": _STR,
                "question": _STR,
                **{c: _STR for c in "ABCD"},
                "answer": _STR,
                "subject": _STR,
            },
            required=("subject", "question", "A", "B", "C", "D", "answer"),
        ),
        BenchmarkSpec(
            key="madinah_qa",
            title="MadinahQA",
            hub_repo="MBZUAI/MadinahQA",
            data_format="csv",
            columns=_ARABIC_MMLU_COLUMNS,
            required=("Context", "Question", "Answer Key", "Option 1", "Option 2"),
            optional=("Option 3", "Option 4", "Option 5"),
        ),
        BenchmarkSpec(
            key="aratrust",
            title="AraTrust",
            hub_repo="asas-ai/AraTrust-categorized",
            data_format="parquet",
            # Answer is the Arabic letter of the right choice; choices carry their letter ("أ) ...").
            columns={"Question": _STR, "A": _STR, "B": _STR, "C": _STR, "Answer": _STR},
            required=("Question", "A", "B", "C", "Answer"),
        ),
        BenchmarkSpec(
            key="arabic_mmlu_ht",
            title="ArbMMLU-HT",
            hub_repo="MBZUAI/human_translated_arabic_mmlu",
            data_format="parquet",
            columns={"question": _STR, "choices": _STR_LIST, "answer": _INT, "subject": _STR},
            required=("question", "choices", "answer"),
        ),
    )
}
BENCHMARK_KEYS: tuple[str, ...] = tuple(BENCHMARKS)


def get_benchmark(key: str) -> BenchmarkSpec:
    """A benchmark by key; the error lists the known keys."""
    try:
        return BENCHMARKS[key]
    except KeyError:
        raise HalaError(f"unknown benchmark {key!r}; known: {', '.join(BENCHMARK_KEYS)}") from None


def check_benchmark_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """The keys, validated and without repeats (order kept); an empty list is an error."""
    if not keys:
        raise HalaError(f"no benchmark to evaluate; choose from: {', '.join(BENCHMARK_KEYS)}")
    return tuple(dict.fromkeys(get_benchmark(k).key for k in keys))


def lighteval_configs(key: str) -> tuple[LightevalTaskConfig, ...]:
    """LightEval's own task configs of a benchmark, in the OALL v2 task list (ArabicMMLU without ``All``)."""
    from lighteval.tasks.multilingual.tasks import arabic

    spec = get_benchmark(key)
    tables: dict[str, Sequence[LightevalTaskConfig]] = {
        "alghafa": arabic.ALGHAFA_TASKS,
        "arabic_mmlu": [c for c in arabic.ARABIC_MMLU_TASKS if c.hf_subset != "All"],
        "arabic_exams": [arabic.arabic_exams_task],
        "madinah_qa": arabic.MADINAH_QA_TASKS,
        "aratrust": arabic.ARATRUST_TASKS,
        "arabic_mmlu_ht": arabic.ARABIC_MMLU_HT_TASKS,
    }
    configs = tuple(tables[key])
    repos = {c.hf_repo for c in configs}
    if repos != {spec.hub_repo}:  # a LightEval upgrade moved the data: the recorded schema may be stale
        raise HalaError(
            f"{key}: LightEval reads {sorted(repos)}, hala expects {spec.hub_repo}; update benchmarks.py"
        )
    return configs
