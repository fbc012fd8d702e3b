"""Helsinki-NLP/opus-100, subset ``ar-en``: parallel sentence pairs for the bilingual judge.

A pair is a two-turn record: English as the user turn, Arabic as the assistant turn. Rows carry no
id, so the id is a hash of the two texts: an exact repeated pair is quarantined as a duplicate.

Evidence: the dataset repository (https://huggingface.co/datasets/Helsinki-NLP/opus-100), commit
326d344 "Add ar-en data files": config ``ar-en`` maps ``ar-en/train-*``, ``ar-en/validation-*`` and
``ar-en/test-*`` (one ``-00000-of-00001.parquet`` file each), with 1,000,000 train, 2,000
validation and 2,000 test rows; its one feature is ``translation`` with the languages ``ar`` and
``en`` (the ``datasets`` ``Translation`` feature, a struct of two strings, ``ar`` first). Agrees
with ``SPEC.columns``; ``SPEC.revision`` is ``main`` (not pinned).
"""

from __future__ import annotations

import pyarrow as pa

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import as_array, blank, build_messages, content_ids
from hala.sources.schema import STRING, struct


def normalise(table: pa.Table) -> Normalised:
    """``translation.en`` -> user turn, ``translation.ar`` -> assistant turn."""
    pairs = as_array(table.column("translation"))
    en, ar = pairs.field("en"), pairs.field("ar")
    missing = pairs.is_null().to_numpy(zero_copy_only=False)
    messages = build_messages([("user", en, None), ("assistant", ar, None)], table.num_rows)
    out = Normalised(ids=content_ids("opus100", [en, ar]), messages=messages, meta=None)
    out.flag(missing, "null_field", "translation")
    out.flag(blank(en), "empty_text", "translation.en")
    out.flag(blank(ar), "empty_text", "translation.ar")
    return out


SPEC = SourceSpec(
    key="opus100",
    hub_id="Helsinki-NLP/opus-100",
    revision="main",
    subset="ar-en",
    split="train",
    role="parallel",
    columns={"translation": struct(ar=STRING, en=STRING)},
    normalise=normalise,
    rules="id = hash of the pair, so exact repeats are quarantined as duplicate_id",
)
