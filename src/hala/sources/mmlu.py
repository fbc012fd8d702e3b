"""cais/mmlu (subset ``all``, split ``test``): the English side of the translator benchmark.

Ids are the row position in the split (``mmlu:test:<i>``). ``meta`` holds subject, choices, answer,
``index`` (that row position) and ``subject_position`` (the row's position among the rows of its
subject, counted over every row read): openai/MMMLU's item of the same subject and position is its
Arabic translation (``hala.evaluation.translation.align``; evidence in ``hala.sources.mmmlu``).

Evidence: the dataset card (https://huggingface.co/datasets/cais/mmlu; its YAML ``dataset_info``,
as copied verbatim by mirrors): config ``all`` has the features ``question`` (string), ``subject``
(string), ``choices`` (sequence of string) and ``answer`` (``class_label`` with names ``A``-``D``,
stored as an integer 0-3), and the splits ``test`` (14,042 rows), ``validation`` (1,531), ``dev``
(285) and ``auxiliary_train`` (99,842); the Hub lists the repository's format as parquet.
lm-evaluation-harness reads the same columns from ``cais/mmlu``'s ``test`` split
(``lm_eval/tasks/mmlu/default/_default_template_yaml``, commit 0085982: ``{{question}}``,
``{{choices[0]}}``..``{{choices[3]}}``, ``doc_to_target: answer``, an index into the four choices).
Agrees with ``SPEC.columns`` (``INTEGER`` accepts the class label's int64); ``SPEC.revision`` is
``main`` (not pinned).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import as_array, blank, build_messages, json_meta
from hala.sources.schema import INTEGER, STRING, list_of


def subject_positions(subjects: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Each row's position among the rows of its subject, in row order (0, 1, ... per subject)."""
    codes = pc.dictionary_encode(pc.fill_null(as_array(subjects), "")).indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    ranked = codes[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]]) if len(ranked) else np.array([], int)
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(ranked)]))
    positions = np.empty(len(codes), dtype=np.int64)
    positions[order] = np.arange(len(codes), dtype=np.int64) - group_start
    return pa.array(positions)


def normalise(table: pa.Table) -> Normalised:
    """The question is the user turn; subject, choices, answer, index and subject position go to meta."""
    n = table.num_rows
    index = pa.array(np.arange(n, dtype=np.int64))
    question = table.column("question")
    choices = as_array(table.column("choices"))
    answer = as_array(table.column("answer"))
    ids = pc.binary_join_element_wise("mmlu", "test", pc.cast(index, pa.string()), ":")
    meta = json_meta(
        {
            "subject": table.column("subject"),
            "choices": choices,
            "answer": answer,
            "index": index,
            "subject_position": subject_positions(table.column("subject")),
        }
    )
    messages = build_messages([("user", question, None)], n)
    out = Normalised(ids=ids, messages=messages, meta=meta)
    out.flag(blank(question), "empty_text", "question")
    four = pc.fill_null(pc.equal(pc.list_value_length(choices), 4), False).to_numpy(zero_copy_only=False)
    out.flag(~np.asarray(four, dtype=bool), "bad_choices", "choices")
    valid = pc.fill_null(pc.and_(pc.greater_equal(answer, 0), pc.less(answer, 4)), False)
    out.flag(~np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool), "bad_answer", "answer")
    return out


SPEC = SourceSpec(
    key="mmlu",
    hub_id="cais/mmlu",
    revision="main",
    subset="all",
    split="test",
    role="eval",
    columns={"question": STRING, "subject": STRING, "choices": list_of(STRING), "answer": INTEGER},
    normalise=normalise,
    rules="id = row index in the test split; aligned with MMMLU by subject and position in the subject",
    whole_table=True,
)
