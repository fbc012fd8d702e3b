"""GAIR/ReAlign-Alpaca: Alpaca instructions with ReAlign-reformatted responses.

The instruction and its optional input form the user turn (joined by a blank line, as Alpaca
prompts do); the reformatted output is the assistant turn.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import as_array, blank, build_messages, content_ids
from hala.sources.schema import STRING


def normalise(table: pa.Table) -> Normalised:
    """``instruction`` (+ ``input``) -> user turn, ``output`` -> assistant turn."""
    instruction, extra = as_array(table.column("instruction")), as_array(table.column("input"))
    joined = pc.binary_join_element_wise(instruction, pc.fill_null(extra, ""), "\n\n")
    prompt = pc.if_else(pa.array(blank(extra)), instruction, joined)
    output = table.column("output")
    messages = build_messages([("user", prompt, None), ("assistant", output, None)], table.num_rows)
    out = Normalised(ids=content_ids("realign_alpaca", [prompt, output]), messages=messages, meta=None)
    out.flag(blank(instruction), "empty_text", "instruction")
    out.flag(blank(output), "empty_text", "output")
    return out


SPEC = SourceSpec(
    key="realign_alpaca",
    hub_id="GAIR/ReAlign-Alpaca",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={"instruction": STRING, "input": STRING, "output": STRING},
    normalise=normalise,
    rules="instruction + blank line + input (when not blank) as the user turn",
)
