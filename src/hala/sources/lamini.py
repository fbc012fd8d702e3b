"""MBZUAI/LaMini-instruction: instruction/response pairs distilled from gpt-3.5-turbo.

``instruction`` is the user turn, ``response`` the assistant turn; ``instruction_source`` (where the
instruction came from) goes to ``meta`` as found, unchecked.

Evidence: the dataset card (https://huggingface.co/datasets/MBZUAI/LaMini-instruction). Its YAML
``dataset_info`` (README commit 7372b3c) declares three string features, ``instruction``,
``response`` and ``instruction_source``, and one split, ``train`` (2,585,615 rows); the data are
parquet shards under ``data/`` (``train-0000N-of-00003-<hash>.parquet`` in the history, so ``datasets``
infers the ``train`` split from the names). The card text on ``main`` describes
``instruction_source`` as "the source of a instruction" with the possible values ``alpaca``,
``generated_flan``, ``generated_p3``, ``original_flan``, ``original_p3``, ``self_instruct_with_topic``
and ``self_instruct_without_topic`` (its examples carry ``generated_flan`` and
``self_instruct_without_topic``). The project README (github.com/mbzuai-nlp/LaMini-LM) names only
``instruction`` and ``response``, as the card did at commit 10887b5, before it listed the third
column. Agrees with ``SPEC.columns``; the fixture uses only the seven listed values.
``SPEC.revision`` is ``main`` (not pinned).
"""

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
