"""Property-based tests (hypothesis): inputs nobody wrote by hand.

Each normaliser gets any table in its source's schema (random Unicode with control characters, empty
and long texts, nulls anywhere); the chunker any text; the preset loader random edits of a valid
preset. Nothing may raise but hala's own errors, and every row read is kept or quarantined.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hala.config import load_preset, resolve_preset_path
from hala.errors import HalaError
from hala.prepare import normalise_batch, normalise_table, split_batch
from hala.sources import SOURCES
from hala.sources.dedup import ClaimedIds
from hala.sources.schema import Kind
from hala.translate.chunking import mask_spans, reassemble, split_for_translation, unmask_spans

# Texts: any code point but lone surrogates (Arrow strings are UTF-8, which cannot hold them; a JSON
# file that escapes one is a read error, tested in test_edge_inputs), control characters included, with
# the characters that matter to the normalisers and the chunker mixed in.
SPECIAL = st.sampled_from(
    [
        "",
        " ",
        "\n",
        "```",
        "`x`",
        "| a | b |",
        "# ",
        "- ",
        "1. ",
        "$x$",
        "http://a.b/c",
        "\u200b",
        "\u0640",
        "⟦0⟧",
    ]
)
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=60),
    st.lists(st.one_of(SPECIAL, st.text(max_size=8)), max_size=12).map("".join),
)
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _value(kind: Kind) -> st.SearchStrategy[Any]:
    """Values of one column kind, null included."""
    if kind.name == "string":
        inner: st.SearchStrategy[Any] = TEXT
    elif kind.name == "integer":
        inner = st.integers(-5, 40)
    elif kind.name == "bool":
        inner = st.booleans()
    elif kind.name == "list":
        assert kind.item is not None
        inner = st.lists(_value(kind.item), max_size=4)
    else:
        inner = st.fixed_dictionaries({name: _value(k) for name, k in kind.fields})
    return st.one_of(st.none(), inner)


def _arrow(kind: Kind) -> pa.DataType:
    if kind.name == "string":
        return pa.string()
    if kind.name == "integer":
        return pa.int64()
    if kind.name == "bool":
        return pa.bool_()
    if kind.name == "list":
        assert kind.item is not None
        return pa.list_(_arrow(kind.item))
    return pa.struct([(name, _arrow(k)) for name, k in kind.fields])


@pytest.mark.parametrize("key", list(SOURCES))
def test_every_normaliser_counts_every_row_of_any_table_in_its_schema(key: str) -> None:
    spec = SOURCES[key]
    schema = pa.schema([(name, _arrow(kind)) for name, kind in spec.columns.items()])
    rows = st.lists(st.fixed_dictionaries({n: _value(k) for n, k in spec.columns.items()}), max_size=12)

    @PROPERTY
    @given(rows)
    def check(table_rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(table_rows, schema=schema)
        try:
            prepared = normalise_table(spec, table)
        except HalaError:
            return  # hala's own error, with its message: allowed
        assert prepared.read == len(table_rows)
        assert prepared.read == prepared.kept.num_rows + prepared.quarantine.num_rows
        kept = prepared.kept.column("id").to_pylist()
        assert len(set(kept)) == len(kept)  # no id twice among the kept rows
        for record in prepared.kept.to_pylist():
            assert record["messages"] and all(m["content"].strip() for m in record["messages"])

    check()


STREAMED = [key for key, spec in SOURCES.items() if not spec.whole_table]


@pytest.mark.parametrize("key", STREAMED)
def test_any_table_normalised_in_small_batches_splits_exactly_as_in_one(key: str) -> None:
    """The prepare stage's batches: same kept rows, quarantine rows and reasons as one whole table.

    Half of the rows come again at the end, so repeated ids (and repeats of quarantined rows) land
    in later batches than their first occurrence.
    """
    spec = SOURCES[key]
    schema = pa.schema([(name, _arrow(kind)) for name, kind in spec.columns.items()])
    rows = st.lists(st.fixed_dictionaries({n: _value(k) for n, k in spec.columns.items()}), max_size=10)

    @PROPERTY
    @given(rows, st.integers(1, 4))
    def check(table_rows: list[dict[str, Any]], batch_rows: int) -> None:
        table = pa.Table.from_pylist(table_rows + table_rows[::2], schema=schema)
        try:
            whole = normalise_table(spec, table)
        except HalaError:
            return
        claimed = ClaimedIds()
        parts = [
            split_batch(normalise_batch(spec, table.slice(start, batch_rows), start), claimed)
            for start in range(0, table.num_rows, batch_rows)
        ]
        kept = pa.concat_tables([whole.kept.slice(0, 0), *(p.kept for p in parts)])
        quarantine = pa.concat_tables([whole.quarantine.slice(0, 0), *(p.quarantine for p in parts)])
        assert kept.to_pylist() == whole.kept.to_pylist()
        assert quarantine.to_pylist() == whole.quarantine.to_pylist()
        assert np.concatenate([whole.kept_hashes[:0], *(p.kept_hashes for p in parts)]).tolist() == (
            whole.kept_hashes.tolist()
        )

    check()


@PROPERTY
@given(TEXT, st.integers(1, 40))
def test_the_chunker_gives_back_every_character_in_place(text: str, budget: int) -> None:
    segments = split_for_translation(text, budget)
    assert "".join(s.text for s in segments) == text
    assert all(s.text for s in segments)
    # A "translation" that changes every prose segment leaves every other character where it was.
    marked = reassemble(segments, [f"<{i}>" for i in range(sum(s.translate for s in segments))])
    pieces = iter(f"<{i}>" for i in range(len(segments)))
    assert marked == "".join(next(pieces) if s.translate else s.text for s in segments)


@PROPERTY
@given(TEXT)
def test_masking_round_trips_exactly(text: str) -> None:
    masked, spans = mask_spans(text)
    assert unmask_spans(masked, spans) == text


PRESET_EDITS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                ("seed",),
                ("merge", "t"),
                ("data", "num_shards"),
                ("data", "max_quarantine_fraction"),
                ("teacher", "prompt"),
                ("judge", "prompt"),
                ("translator", "directions"),
                ("quality", "min_script_ratio"),
                ("eval", "gates", "max_task_drop"),
                ("cluster", "teacher_pool"),
                ("students",),
                ("nonsense",),
            ]
        ),
        st.one_of(
            st.none(), st.integers(-3, 5000), st.floats(allow_nan=True), TEXT, st.lists(TEXT, max_size=2)
        ),
    ),
    min_size=1,
    max_size=3,
)


@PROPERTY
@given(PRESET_EDITS)
def test_any_edit_of_a_preset_loads_or_fails_with_hala_s_error(
    edits: list[tuple[tuple[str, ...], Any]],
) -> None:
    raw = yaml.safe_load(resolve_preset_path("tiny").read_text())
    raw["extends"] = str(resolve_preset_path("paper"))
    for path, value in edits:
        node = raw
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
        node[path[-1]] = value
    preset_file = Path(_tmp()) / "edited.yaml"
    preset_file.write_text(json.dumps(raw))  # JSON is YAML; it keeps any string exact
    with contextlib.suppress(HalaError):  # hala's own error, naming the field: allowed
        load_preset(preset_file)


def _tmp() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="hala-preset-")
