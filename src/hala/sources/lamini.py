"""MBZUAI/LaMini-instruction: instruction/response pairs distilled from gpt-3.5-turbo."""

from __future__ import annotations

import pyarrow as pa

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import blank, build_messages, content_ids, json_meta
from hala.sources.schema import STRING


def normalise(table: pa.Table) -> Normalised:
    """``instruction`` -> user turn, ``response`` -> assistant turn; the origin goes to meta."""
    instruction, response = table.column("instruction"), table.column("response")
    messages = build_messages([("user", instruction, None), ("assistant", response, None)], table.num_rows)
    meta = json_meta({"instruction_source": table.column("instruction_source")})
    out = Normalised(ids=content_ids("lamini", [instruction, response]), messages=messages, meta=meta)
    out.flag(blank(instruction), "empty_text", "instruction")
    out.flag(blank(response), "empty_text", "response")
    return out


SPEC = SourceSpec(
    key="lamini",
    hub_id="MBZUAI/LaMini-instruction",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={"instruction": STRING, "response": STRING, "instruction_source": STRING},
    normalise=normalise,
)
