"""GAIR/ReAlign-Alpaca: Alpaca instructions with ReAlign-reformatted responses.

Layout (evidence: the GAIR-NLP/ReAlign repository, ``README.md`` at commit 65e66d3, which documents the
one format its pipeline reads and writes and its released ReAlign datasets use): one JSON file holding
a list of records ``{"id": <int>, "items": [{"from": "human", "value": ..., "category": ...},
{"from": "gpt", "value": ...}]}``. The human turn carries the task ``category`` (ReAlign's task
classifier; names in ``code/constant.py``), the gpt turn does not (as in the repository's own output,
``datasets/nq/nq_factuality_100_realign.json``), so datasets 5.2 types ``items`` as ``List(Json)``:
decoded by :func:`hala.sources.schema.decode_json_lists`.

``human`` is the user turn, ``gpt`` the assistant turn; any other role is quarantined as
``unknown_role``. ``category`` and the upstream ``id`` go to ``meta``; record ids are content hashes
(the upstream id is an integer that need not be unique across files).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import (
    as_array,
    content_ids,
    conversation_text,
    json_meta,
    map_conversation,
    missing_turns,
)
from hala.sources.schema import STRING, list_of, struct

ROLE_MAP = {"human": "user", "gpt": "assistant"}


def _categories(items: pa.Array) -> pa.Array:
    """Per record, the ``category`` of its first turn that has one (null when none has)."""
    items = as_array(items)
    flat = pc.list_flatten(pc.fill_null(items, pa.scalar([], items.type)))
    if "category" not in [flat.type.field(i).name for i in range(flat.type.num_fields)]:
        return pa.nulls(len(items), pa.string())
    parents = np.asarray(pc.list_parent_indices(pc.fill_null(items, pa.scalar([], items.type))).to_numpy())
    values = as_array(flat.field("category")).cast(pa.string()).to_pylist()
    out: list[str | None] = [None] * len(items)
    for parent, value in zip(parents.tolist(), values, strict=True):
        if value is not None and out[parent] is None:
            out[parent] = value
    return pa.array(out, pa.string())


def normalise(table: pa.Table) -> Normalised:
    """``human`` -> user, ``gpt`` -> assistant; ``category`` and the upstream id to ``meta``."""
    items = table.column("items")
    messages, null_row, unknown_role, blank_text = map_conversation(items, "from", "value", ROLE_MAP)
    upstream = (
        pc.cast(as_array(table.column("id")), pa.string())
        if "id" in table.column_names
        else pa.nulls(table.num_rows, pa.string())
    )
    meta = json_meta({"category": _categories(items), "upstream_id": upstream})
    out = Normalised(
        ids=content_ids("realign_alpaca", [conversation_text(messages)]), messages=messages, meta=meta
    )
    out.flag(null_row, "null_field", "items")
    out.flag(unknown_role, "unknown_role", "items.from")
    out.flag(blank_text, "empty_text", "items.value")
    out.flag(missing_turns(messages), "missing_turn", "items")
    return out


SPEC = SourceSpec(
    key="realign_alpaca",
    hub_id="GAIR/ReAlign-Alpaca",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={"items": list_of(struct(**{"from": STRING, "value": STRING}))},
    normalise=normalise,
    rules="items: human -> user, gpt -> assistant; category to meta",
)
