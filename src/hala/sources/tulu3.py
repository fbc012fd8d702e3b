"""allenai/tulu-3-sft-mixture: only its English subsets are kept.

The mixture tags each row with the subset it came from (column ``source``). Kept: the subsets in
:data:`ENGLISH_SUBSETS`. Quarantined as ``non_english_subset``: the multilingual ones in
:data:`MULTILINGUAL_SUBSETS` (Aya, OpenAssistant and WildChat carry many languages). A subset in
neither list (a new upstream revision) is quarantined as ``unknown_subset`` so it is counted and
reviewed, never trained on by accident.

Evidence: the dataset card (https://huggingface.co/datasets/allenai/tulu-3-sft-mixture, README.md at
commit b14afda60f1bbebe55d5d2fa1e4df5042f97f8be). Its YAML header gives the features ``id`` (string),
``messages`` (list of ``{content, role}``, both strings) and ``source`` (string), one split ``train`` of
939,343 examples, and one config, ``default``, whose data files are ``data/train-*`` (parquet); agrees
with ``SPEC.columns`` and ``subset=None``. The card lists the mixture's sets (CoCoNot, FLAN v2, No
Robots, OpenAssistant, the Tulu 3 persona sets, NuminaMath-TIR, WildGuardMix, WildJailbreak, the
hard-coded set, Aya, WildChat, Table-GPT, SciRIFF, Evol-CodeAlpaca), and its ``language`` list names 70
languages, hence the filter. The ``source`` values are the hub ids of the datasets mixed
(``ai2-adapt-dev/...``, and ``allenai/tulu-3-sft-personas-math-grade``): the 19 names of
:data:`ENGLISH_SUBSETS` and :data:`MULTILINGUAL_SUBSETS` are exactly the v3.9 mixture that
allenai/open-instruct lists, set by set, in
``configs/train_configs/sft/tulu3_70b_preview_mix_v3.9-noncommercial.yaml`` (commit 205c2f6: general
oasst1_converted, flan_v2_converted, tulu_hard_coded_repeated_10, no_robots_converted,
tulu_v3.9_wildchat_100k; five math, two coding, one instruction-following, three safety and three
specialty sets, tulu_v3.9_aya_100k among them). Public code that reads this dataset filters its
``source`` column by the same names (dropping tulu_v3.9_wildchat_100k, oasst1_converted and
tulu_v3.9_aya_100k as non-English, found by code search; the index does not name that file's
repository). ``SPEC.revision`` is ``main``: a revision that adds or renames a subset shows up as
``unknown_subset`` counts, not as silently kept rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import as_array, blank, map_conversation, missing_turns, prefixed_ids
from hala.sources.schema import STRING, list_of, struct

ENGLISH_SUBSETS = frozenset(
    {
        "ai2-adapt-dev/flan_v2_converted",
        "ai2-adapt-dev/no_robots_converted",
        "ai2-adapt-dev/personahub_math_v5_regen_149960",
        "allenai/tulu-3-sft-personas-math-grade",
        "ai2-adapt-dev/tulu_v3.9_open_math_2_gsm8k_50k",
        "ai2-adapt-dev/numinamath_tir_math_decontaminated",
        "ai2-adapt-dev/tulu_v3.9_personahub_math_interm_algebra_20k",
        "ai2-adapt-dev/personahub_code_v2_34999",
        "ai2-adapt-dev/evol_codealpaca_heval_decontaminated",
        "ai2-adapt-dev/personahub_ifdata_manual_seed_v3_29980",
        "ai2-adapt-dev/coconot_converted",
        "ai2-adapt-dev/tulu_v3.9_wildjailbreak_decontaminated_50k",
        "ai2-adapt-dev/tulu_v3.9_synthetic_finalresp_wildguardmixtrain_decontaminated_50k",
        "ai2-adapt-dev/tulu_v3.9_sciriff_10k",
        "ai2-adapt-dev/tulu_v3.9_table_gpt_5k",
        "ai2-adapt-dev/tulu_hard_coded_repeated_10",
    }
)
MULTILINGUAL_SUBSETS = frozenset(
    {
        "ai2-adapt-dev/tulu_v3.9_aya_100k",
        "ai2-adapt-dev/oasst1_converted",
        "ai2-adapt-dev/tulu_v3.9_wildchat_100k",
    }
)
ROLE_MAP = {"system": "system", "user": "user", "assistant": "assistant"}


def _in(values: pa.Array, subset: frozenset[str]) -> np.ndarray:
    return np.asarray(pc.is_in(values, pa.array(sorted(subset))).to_numpy(zero_copy_only=False), dtype=bool)


def normalise(table: pa.Table) -> Normalised:
    """Messages pass through; rows from non-English or unknown subsets are quarantined."""
    messages, null_row, unknown_role, blank_text = map_conversation(
        table.column("messages"), "role", "content", ROLE_MAP
    )
    subset = pc.fill_null(as_array(table.column("source")), "")
    out = Normalised(ids=prefixed_ids("tulu3", table.column("id")), messages=messages, meta=None)
    out.flag(blank(table.column("id")), "empty_id", "id")
    out.flag(null_row, "null_field", "messages")
    out.flag(unknown_role, "unknown_role", "messages.role")
    out.flag(blank_text, "empty_text", "messages.content")
    out.flag(missing_turns(messages), "missing_turn", "messages")
    out.flag(_in(subset, MULTILINGUAL_SUBSETS), "non_english_subset", "source")
    out.flag(~_in(subset, ENGLISH_SUBSETS | MULTILINGUAL_SUBSETS), "unknown_subset", "source")
    return out


SPEC = SourceSpec(
    key="tulu3",
    hub_id="allenai/tulu-3-sft-mixture",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={"id": STRING, "messages": list_of(struct(role=STRING, content=STRING)), "source": STRING},
    normalise=normalise,
    rules="English subsets only (ENGLISH_SUBSETS); multilingual and unknown subsets quarantined",
    selections=frozenset({"non_english_subset"}),
)
