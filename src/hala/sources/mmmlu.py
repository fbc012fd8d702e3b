"""openai/MMMLU (subset ``AR_XY``, split ``test``): professional Arabic translations of MMLU test.

``Unnamed: 0`` is the MMLU test row index; the id ``mmmlu:<index>`` aligns with ``mmlu:test:<index>``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import as_array, blank, build_messages, json_meta, prefixed_ids
from hala.sources.schema import INTEGER, STRING

LETTERS = ("A", "B", "C", "D")


def normalise(table: pa.Table) -> Normalised:
    """The Arabic question is the user turn; subject, choices, answer index and MMLU index go to meta."""
    n = table.num_rows
    index = as_array(table.column("Unnamed: 0"))
    letter = pc.utf8_trim_whitespace(as_array(table.column("Answer")))
    answer = pc.index_in(letter, value_set=pa.array(LETTERS))
    choices = [as_array(table.column(c)).to_pylist() for c in LETTERS]
    meta = json_meta(
        {
            "subject": table.column("Subject"),
            "choices": pa.array([list(row) for row in zip(*choices, strict=True)]),
            "answer": answer,
            "index": index,
        }
    )
    messages = build_messages([("user", table.column("Question"), None)], n)
    out = Normalised(ids=prefixed_ids("mmmlu", index), messages=messages, meta=meta)
    out.flag(blank(table.column("Question")), "empty_text", "Question")
    for column in LETTERS:
        out.flag(blank(table.column(column)), "empty_text", column)
    out.flag(np.asarray(answer.is_null().to_numpy(zero_copy_only=False), dtype=bool), "bad_answer", "Answer")
    return out


SPEC = SourceSpec(
    key="mmmlu",
    hub_id="openai/MMMLU",
    revision="main",
    subset="AR_XY",
    split="test",
    role="eval",
    columns={
        "Unnamed: 0": INTEGER,
        "Question": STRING,
        "A": STRING,
        "B": STRING,
        "C": STRING,
        "D": STRING,
        "Answer": STRING,
        "Subject": STRING,
    },
    normalise=normalise,
    rules="id = 'Unnamed: 0' (the MMLU test index)",
)
