"""Dahoas/synthetic-instruct-gptj-pairwise: preference pairs; the report uses prompt + chosen.

The rejected response is never used.
"""

from __future__ import annotations

import pyarrow as pa

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import blank, build_messages, content_ids
from hala.sources.schema import STRING


def normalise(table: pa.Table) -> Normalised:
    """``prompt`` -> user turn, ``chosen`` -> assistant turn."""
    prompt, chosen = table.column("prompt"), table.column("chosen")
    messages = build_messages([("user", prompt, None), ("assistant", chosen, None)], table.num_rows)
    out = Normalised(ids=content_ids("gptj_pairwise", [prompt, chosen]), messages=messages, meta=None)
    out.flag(blank(prompt), "empty_text", "prompt")
    out.flag(blank(chosen), "empty_text", "chosen")
    return out


SPEC = SourceSpec(
    key="gptj_pairwise",
    hub_id="Dahoas/synthetic-instruct-gptj-pairwise",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={"prompt": STRING, "chosen": STRING, "rejected": STRING},
    normalise=normalise,
    rules="prompt + chosen response; rejected is dropped by design",
)
