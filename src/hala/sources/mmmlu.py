"""openai/MMMLU (subset ``AR_XY``, split ``test``): professional Arabic translations of MMLU test.

The file (``test/mmlu_AR-XY.csv``) is the 57 subjects' test items concatenated in cais/mmlu's order,
with an unnamed first column (``Unnamed: 0`` once read) that is the position of the row *within its
subject*: it restarts at 0 for every subject, so it repeats across the file and is not a key. Evidence:
the openai/MMMLU dataset card (columns ``Question, A, B, C, D, Answer, Subject`` beside the unnamed
index) and public loaders. Named ones read the columns and never use the index as a key: lighteval
0.13.0 (installed here), ``lighteval/tasks/multilingual/tasks/openai_mmlu.py``, reads ``openai/MMMLU``
subset ``AR_XY``, split ``test``, at hub revision 038c7808122969ead7456361af05cb8f47d247f8, maps
``Question``/``A``-``D``/``Answer`` and selects each MMLU subject by ``Subject`` (lower-cased); and
open-compass/opencompass ``opencompass/datasets/mmmlu.py`` (commit 48a0d9c8762320b09b2b4a9fb029ed43453f5c69)
reads the same columns, ``Subject`` with ``_`` as spaces. The per-subject index comes from a loader
found by code search for ``mmlu_AR-XY.csv`` whose repository the index does not name: it reads the CSV
with the columns ``"", Question, A, B, C, D, Answer, Subject``, states "OpenAI's first CSV column is an
index local to each subject and therefore repeats across the 57 concatenated subjects", and refuses the
file unless, per subject, that column runs 0..n-1; another pins the dataset at revision
325a01dc3e173cac1578df94120499aaca2e2504 ("static since" 2024-10-16) and names the file
``mmlu_AR-XY.csv``.

So ids are the row position in the file (``mmmlu:<row>``, unique whatever that column holds), and
``meta`` carries ``subject_position`` (the row's position among its subject's rows, counted over every
row read) and ``source_index`` (the column as found). The translator benchmark pairs an MMLU item with
the MMMLU item of the same subject and subject position: right whether the column is per subject or
global, and whatever order the subjects come in. A valid row is never quarantined for that column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import as_array, blank, build_messages, json_meta, prefixed_ids
from hala.sources.mmlu import subject_positions
from hala.sources.schema import INTEGER, STRING

LETTERS = ("A", "B", "C", "D")


def normalise(table: pa.Table) -> Normalised:
    """The Arabic question is the user turn; subject, choices, answer, row and subject position to meta."""
    n = table.num_rows
    index = pa.array(np.arange(n, dtype=np.int64))
    letter = pc.utf8_trim_whitespace(as_array(table.column("Answer")))
    answer = pc.index_in(letter, value_set=pa.array(LETTERS))
    choices = [as_array(table.column(c)).to_pylist() for c in LETTERS]
    meta = json_meta(
        {
            "subject": table.column("Subject"),
            "choices": pa.array([list(row) for row in zip(*choices, strict=True)]),
            "answer": answer,
            "index": index,
            "subject_position": subject_positions(table.column("Subject")),
            "source_index": table.column("Unnamed: 0"),
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
    rules="id = row in the file; aligned with MMLU by subject and position in the subject",
    whole_table=True,
)
