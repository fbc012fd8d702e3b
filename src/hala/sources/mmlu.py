"""cais/mmlu (subset ``all``, split ``test``): the English side of the translator benchmark.

Ids are the row position in the split (``mmlu:test:<i>``), the index openai/MMMLU keeps in its
``Unnamed: 0`` column, so the two align by subject and index. Choices and answer go to ``meta``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import as_array, blank, build_messages, json_meta
from hala.sources.schema import INTEGER, STRING, list_of


def normalise(table: pa.Table) -> Normalised:
    """The question is the user turn; subject, choices, answer and index go to meta."""
    n = table.num_rows
    index = pa.array(np.arange(n, dtype=np.int64))
    question = table.column("question")
    choices = as_array(table.column("choices"))
    answer = as_array(table.column("answer"))
    ids = pc.binary_join_element_wise("mmlu", "test", pc.cast(index, pa.string()), ":")
    meta = json_meta(
        {"subject": table.column("subject"), "choices": choices, "answer": answer, "index": index}
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
    rules="id = row index in the test split (aligns with MMMLU's 'Unnamed: 0')",
)
