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

Evidence. LightEval 0.13.0's own task code (``lighteval/tasks/multilingual/tasks/arabic.py``, as
installed) gives each table row: ``ALGHAFA_SUBSETS`` (9), ``ARABIC_MMLU_SUBSETS`` (41 with ``All``),
``arabic_exams_task`` (``hf_subset="default"``), ``MADINAH_QA_SUBSETS`` (2), ``ARATRUST_SUBSETS`` (8)
and ``ARABIC_MMLU_HT_SUBSETS`` (57); the scored split (``evaluation_splits``); the few-shot split
(``validation`` for AlGhafa and EXAMS, ``dev`` for ArabicMMLU and MadinahQA, none for AraTrust and
ArbMMLU-HT); no ``hf_revision`` (LightEval reads ``main``). The columns each prompt function reads
are :attr:`BenchmarkSpec.required` and ``optional``: ``alghafa_pfn`` reads ``query``, ``int(label)``
and each ``sol1``..``sol5`` present; ``arabic_mmlu_pfn`` and ``madinah_qa_pfn`` read ``Question``,
``Answer Key`` (a Latin letter) and the non-empty ``Option 1``..``Option 5`` (MadinahQA also
``Context``); ``arabic_exams_pfn`` reads ``subject``, ``question``, ``A``-``D`` and ``answer`` (a
Latin letter); ``aratrust_pfn`` reads ``Question``, ``A``-``C`` and ``Answer`` (an Arabic letter);
``arabic_mmlu_ht_pfn`` reads ``question``, ``choices`` and ``answer`` (an int index). The hub side:

- AlGhafa: the card's YAML (README commit a31ebd3, the revision HELM pins) gives every config
  ``query``, ``sol1``..``solN`` (N = 2 to 5 by subset) and ``label``, all ``string``, and the splits
  ``test`` and ``validation``, files ``<config>/<split>-00000-of-00001.parquet``.
- ArabicMMLU: the card's ``configs`` map each subject (and ``All``) to ``<subject>/test.csv`` and
  ``<subject>/dev.csv``. The columns are those of the project's CSV as its own evaluation code reads
  it (github.com/mbzuai-nlp/ArabicMMLU, ``util_prompt.py``: ``Level``, ``Country``, ``Subject``,
  ``Question``, ``Context``, ``Option 1``..``Option 5``, ``Answer Key`` in ``A``-``E``) with ``ID``,
  ``Source`` and ``Group`` (in the ``arbml/ArabicMMLU`` parquet copy, which renames the options).
  The types are what the CSV reader infers: HELM's loader (stanford-crfm/helm,
  ``arabic_mmlu_scenario.py``, pinned revision 7aa530e) notes that the options of
  ``Math (Primary School)`` read as floats, which LightEval's prompt prints as floats (``54.0``).
- EXAMS (Arabic): ``data/{dev,test,validation}-00000-of-00001.parquet`` (commit bc7a293, the
  revision HELM pins); HELM's loader reads ``id``, ``question``, ``A``-``D`` and ``answer``.
- MadinahQA: HELM's loader (``madinah_qa_scenario.py``, pinned revision 62e7c86) reads the two subsets'
  ``dev`` and ``test`` splits and ``Question``, ``Answer Key``, ``Option 1``..``Option 5``: the
  ArabicMMLU CSV layout, of which the two subjects are the Arabic Language ones.
- AraTrust (categorized): the tree on ``main`` (commit b92c511) holds
  ``<category>/train-00000-of-00001.parquet`` for the eight categories; HELM's loader of the
  uncategorized ``asas-ai/AraTrust`` reads ``Question``, ``A``, ``B``, ``C`` and ``Answer``.
- ArbMMLU-HT: one config per subject (57 files, commit 93878e4), ``test`` only (the auto-converted
  parquet has ``<subject>/test``); HELM's loader (pinned revision 5ed7830) reads ``question``,
  ``choices`` and ``answer`` as an index into ``choices``. The format of the 57 uploaded files was
  not seen (the Hub lists parquet): ``data_format`` only shapes the fixture.

The recorded columns agree with all of this; the fixtures (``fixtures/eval``) reproduce them. For the
two CSV datasets the recorded types are nominal (the CSV reader infers them per file) and the local
check reads column names only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hala.errors import HalaError

if TYPE_CHECKING:
    from lighteval.tasks.lighteval_task import LightevalTaskConfig

DataFormat = Literal["parquet", "csv"]

# Column types as written in the hub datasets (Arrow type names; nominal for the CSV ones).
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
