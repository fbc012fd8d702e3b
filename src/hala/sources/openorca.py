"""Open-Orca/OpenOrca: GPT-4/3.5 augmented FLAN questions with system prompts.

Rule from the report: the teacher translates the *first N* rows of the train split (N = 405,000 in
``paper``), so a preset's ``limit`` takes a prefix, never a sample. An empty system prompt means no
system turn; an empty question or response is quarantined.
"""

from __future__ import annotations

import pyarrow as pa

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import blank, build_messages, prefixed_ids
from hala.sources.schema import STRING


def normalise(table: pa.Table) -> Normalised:
    """System prompt (when present), question and response become a three-turn conversation."""
    n = table.num_rows
    system = table.column("system_prompt")
    messages = build_messages(
        [
            ("system", system, ~blank(system)),
            ("user", table.column("question"), None),
            ("assistant", table.column("response"), None),
        ],
        n,
    )
    out = Normalised(ids=prefixed_ids("openorca", table.column("id")), messages=messages, meta=None)
    out.flag(blank(table.column("id")), "empty_id", "id")
    out.flag(blank(table.column("question")), "empty_text", "question")
    out.flag(blank(table.column("response")), "empty_text", "response")
    return out


SPEC = SourceSpec(
    key="openorca",
    hub_id="Open-Orca/OpenOrca",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={"id": STRING, "system_prompt": STRING, "question": STRING, "response": STRING},
    normalise=normalise,
    rules="first N rows of train (limit); empty system prompt = no system turn",
)
