"""Dahoas/synthetic-instruct-gptj-pairwise: preference pairs; the report uses prompt + chosen.

The rejected response is never used.

Evidence: the repository (https://huggingface.co/datasets/Dahoas/synthetic-instruct-gptj-pairwise).
Its ``dataset_infos.json`` on ``main`` declares three string features, ``prompt``, ``chosen`` and
``rejected``, and one split, ``train`` (33,143 rows); the data are one parquet file,
``data/train-00000-of-00001-<hash>.parquet``, and no README declares ``configs`` (a README is only
proposed, in the open pull requests #1 and #2), so ``datasets`` infers ``train`` from the file name.
DeepSpeed-Chat's loader (microsoft/DeepSpeedExamples,
``applications/DeepSpeed-Chat/dschat/utils/data/raw_datasets.py``,
``DahoasSyntheticinstructgptjpairwiseDataset``) reads the same three columns and only
``raw_datasets["train"]``, splitting it 9:1 itself: there is no other split. Agrees with
``SPEC.columns``; ``SPEC.revision`` is ``main`` (not pinned).
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
