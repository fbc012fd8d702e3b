"""EricLu/SCP-116K: science problems with the solution matched from the source document.

The record pairs the problem with ``matched_solution`` (the human-written solution); the model
solutions (o1, QwQ) are left out. The domain goes to ``meta``.
"""

from __future__ import annotations

import pyarrow as pa

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import blank, build_messages, content_ids, json_meta
from hala.sources.schema import BOOL, STRING


def normalise(table: pa.Table) -> Normalised:
    """``problem`` -> user turn, ``matched_solution`` -> assistant turn."""
    problem, solution = table.column("problem"), table.column("matched_solution")
    messages = build_messages([("user", problem, None), ("assistant", solution, None)], table.num_rows)
    meta = json_meta({"domain": table.column("domain")})
    out = Normalised(ids=content_ids("scp116k", [problem, solution]), messages=messages, meta=meta)
    out.flag(blank(problem), "empty_text", "problem")
    out.flag(blank(solution), "empty_text", "matched_solution")
    return out


SPEC = SourceSpec(
    key="scp116k",
    hub_id="EricLu/SCP-116K",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={
        "domain": STRING,
        "problem": STRING,
        "matched_solution": STRING,
        "o1_solution": STRING,
        "is_o1_solution_same_with_matched_solution": BOOL,
        "qwq_solution": STRING,
        "is_qwq_solution_same_with_matched_solution": BOOL,
    },
    normalise=normalise,
    rules="problem + matched_solution; model-written solutions are not used",
)
