"""Every source: its fixture loads through datasets, normalises, and bad input is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES
from hala.errors import SourceReadError, SourceSchemaError
from hala.prepare import normalise_table, prepare_source, read_records, read_source
from hala.sources import SOURCES, get_source
from hala.sources.hermes3 import code_related
from hala.sources.schema import decode_json_lists
from hala.sources.tulu3 import ENGLISH_SUBSETS, MULTILINGUAL_SUBSETS


def _prepare(key: str, tmp_path: Path, shards: int = 2):
    return prepare_source(SOURCES[key], str(FIXTURES / key), tmp_path / key, num_shards=shards)


@pytest.mark.parametrize("key", list(SOURCES))
def test_fixture_normalises_and_counts_balance(key: str, tmp_path: Path) -> None:
    counts = _prepare(key, tmp_path)
    assert counts.read >= 20
    assert counts.balanced()
    records = read_records(tmp_path / key)
    assert records.num_rows == counts.kept
    assert len(set(records.column("id").to_pylist())) == counts.kept
    for row in records.to_pylist():
        assert row["id"].startswith(f"{key}:") and row["source"] == key
        roles = [m["role"] for m in row["messages"]]
        assert set(roles) <= {"system", "user", "assistant"} and "user" in roles
        assert all(m["content"].strip() for m in row["messages"])
    quarantine = pq.read_table(tmp_path / key / "quarantine.parquet")
    assert quarantine.num_rows == sum(counts.quarantined.values())


def test_openorca_keeps_system_prompts_and_quarantines_the_empty_response(tmp_path: Path) -> None:
    table = read_source(SOURCES["openorca"], str(FIXTURES / "openorca"))
    prepared = normalise_table(SOURCES["openorca"], table)
    assert prepared.quarantined_by_reason() == {"empty_text": 1}
    assert prepared.quarantine.to_pylist()[0]["row"] == 5
    assert prepared.quarantine.to_pylist()[0]["column"] == "response"
    systems = table.column("system_prompt").to_pylist()
    with_system = sum(1 for i, s in enumerate(systems) if s.strip() and i != 5)
    kept = prepared.kept.to_pylist()
    assert sum(1 for r in kept if r["messages"][0]["role"] == "system") == with_system
    first = table.slice(0, 1).to_pylist()[0]
    assert kept[0]["messages"][-1] == {"role": "assistant", "content": first["response"]}


def test_openorca_limit_takes_the_first_rows() -> None:
    full = read_source(SOURCES["openorca"], str(FIXTURES / "openorca"))
    first = read_source(SOURCES["openorca"], str(FIXTURES / "openorca"), limit=7)
    assert first.column("id").to_pylist() == full.column("id").to_pylist()[:7]


def test_opus_pairs_are_english_user_arabic_assistant_and_repeats_are_quarantined() -> None:
    table = read_source(SOURCES["opus100"], str(FIXTURES / "opus100"))
    prepared = normalise_table(SOURCES["opus100"], table)
    assert prepared.quarantined_by_reason() == {"duplicate_id": 1}
    row = prepared.kept.to_pylist()[0]
    pair = table.column("translation").to_pylist()[0]
    assert row["messages"] == [
        {"role": "user", "content": pair["en"]},
        {"role": "assistant", "content": pair["ar"]},
    ]


def test_hermes_code_rule_matches_the_labelled_fixture() -> None:
    spec = SOURCES["hermes3"]
    table = read_source(spec, str(FIXTURES / "hermes3"))
    expected = json.loads((FIXTURES.parent / "labels" / "hermes3_code_related_indices.json").read_text())
    # Some turns carry a weight, so datasets reads the turns as List(Json): decoded as the stage does.
    turns = decode_json_lists("hermes3", table, spec.columns).column("conversations")
    flagged = [i for i, hit in enumerate(code_related(turns).to_pylist()) if hit]
    assert flagged == expected
    prepared = normalise_table(SOURCES["hermes3"], table)
    assert prepared.quarantined_by_reason()["code_related"] == len(expected)


@pytest.mark.parametrize(
    ("text", "is_code"),
    [
        ("Write a Python function that reverses a list.", True),
        ("Here is the fix:\n```js\nconsole.log(1)\n```", True),
        ("Traceback (most recent call last):\n  File 'x.py'", True),
        ("Can you debug this script for me? It hangs.", True),
        ("How do I write a SQL query that joins two tables?", True),
        ("What is the zip code of Riyadh's King Fahd district?", False),
        ("Summarise our company's code of conduct in three bullets.", False),
        ("Translate 'SOS' into Morse code.", False),
        ("Use the word `serendipity` in a sentence.", False),
        ("1. Preheat the oven.\n2. Mix flour and sugar.", False),
    ],
)
def test_hermes_code_rule_positives_and_negatives(text: str, is_code: bool) -> None:
    conversations = pa.array([[{"from": "human", "value": text}, {"from": "gpt", "value": "Sure."}]])
    assert code_related(conversations).to_pylist() == [is_code]


def test_tulu_keeps_only_english_subsets() -> None:
    table = read_source(SOURCES["tulu3"], str(FIXTURES / "tulu3"))
    prepared = normalise_table(SOURCES["tulu3"], table)
    subsets = table.column("source").to_pylist()
    multilingual = sum(1 for s in subsets if s in MULTILINGUAL_SUBSETS)
    assert multilingual >= 6
    assert prepared.quarantined_by_reason().get("non_english_subset") == multilingual
    kept_ids = set(prepared.kept.column("id").to_pylist())
    for row_id, subset in zip(table.column("id").to_pylist(), subsets, strict=True):
        assert (f"tulu3:{row_id}" in kept_ids) == (subset in ENGLISH_SUBSETS)


def test_tulu_unknown_subset_is_counted_not_kept() -> None:
    table = pa.table(
        {
            "id": ["a"],
            "messages": [[{"content": "hi", "role": "user"}, {"content": "hello", "role": "assistant"}]],
            "source": ["ai2-adapt-dev/some_new_subset"],
        }
    )
    assert normalise_table(SOURCES["tulu3"], table).quarantined_by_reason() == {"unknown_subset": 1}


def test_mmlu_and_mmmlu_align_by_subject_and_position_in_the_subject() -> None:
    en = normalise_table(
        SOURCES["mmlu"], read_source(SOURCES["mmlu"], str(FIXTURES / "mmlu"))
    ).kept.to_pylist()
    ar = normalise_table(
        SOURCES["mmmlu"], read_source(SOURCES["mmmlu"], str(FIXTURES / "mmmlu"))
    ).kept.to_pylist()
    assert len(en) == len(ar) >= 20
    for e, a in zip(en, ar, strict=True):
        e_meta, a_meta = json.loads(e["meta"]), json.loads(a["meta"])
        assert e["id"] == f"mmlu:test:{e_meta['index']}" and a["id"] == f"mmmlu:{a_meta['index']}"
        assert (e_meta["subject"], e_meta["subject_position"], e_meta["answer"]) == (
            a_meta["subject"],
            a_meta["subject_position"],
            a_meta["answer"],
        )
        # The fixture's first column is the position within the subject, as in the real file.
        assert a_meta["source_index"] == a_meta["subject_position"]
        assert len(a_meta["choices"]) == 4


def test_get_source_by_key_or_hub_id() -> None:
    assert get_source("Open-Orca/OpenOrca") is get_source("openorca")
    with pytest.raises(KeyError, match="known sources"):
        get_source("wikipedia")


# ---- bad input -------------------------------------------------------------------------------


def _jsonl(folder: Path, rows: list[dict], name: str = "train.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return folder


ORCA = {"id": "x.1", "system_prompt": "", "question": "q", "response": "r"}


def test_missing_column_is_an_error_naming_source_and_column(tmp_path: Path) -> None:
    folder = _jsonl(tmp_path / "orca", [{k: v for k, v in ORCA.items() if k != "response"}])
    with pytest.raises(
        SourceSchemaError, match=r"openorca \(Open-Orca/OpenOrca\): missing column\(s\) \['response'\]"
    ):
        prepare_source(SOURCES["openorca"], str(folder), tmp_path / "out", 1)


def test_mistyped_column_is_an_error_naming_the_column(tmp_path: Path) -> None:
    folder = _jsonl(tmp_path / "orca", [{**ORCA, "response": 7}, {**ORCA, "id": "x.2", "response": 8}])
    with pytest.raises(
        SourceSchemaError, match=r"column 'response' has the wrong type: expected string, found int64"
    ):
        prepare_source(SOURCES["openorca"], str(folder), tmp_path / "out", 1)


def test_mistyped_nested_field_is_an_error(tmp_path: Path) -> None:
    folder = _jsonl(
        tmp_path / "tulu", [{"id": "a", "messages": [{"content": 1, "role": "user"}], "source": "s"}]
    )
    with pytest.raises(
        SourceSchemaError, match=r"'messages'.*in list items: struct field 'content': expected string"
    ):
        prepare_source(SOURCES["tulu3"], str(folder), tmp_path / "out", 1)


def test_non_string_value_in_one_row_names_the_row(tmp_path: Path) -> None:
    folder = _jsonl(tmp_path / "orca", [ORCA, {**ORCA, "id": "x.2"}, {**ORCA, "id": "x.3", "question": 42}])
    with pytest.raises(SourceSchemaError, match=r"openorca .*column 'question'.*row 2 holds 42, a int"):
        prepare_source(SOURCES["openorca"], str(folder), tmp_path / "out", 1)


def test_null_empty_and_duplicate_rows_are_quarantined_with_reasons(tmp_path: Path) -> None:
    rows = [
        ORCA,
        {**ORCA, "id": "x.2", "question": None},
        {**ORCA, "id": "x.3", "response": "   \n"},
        {**ORCA},  # repeats x.1
        {**ORCA, "id": "x.4", "system_prompt": "Be brief."},
    ]
    counts = prepare_source(SOURCES["openorca"], str(_jsonl(tmp_path / "o", rows)), tmp_path / "out", 2)
    assert (counts.read, counts.kept) == (5, 2)
    assert counts.quarantined == {"duplicate_id": 1, "empty_text": 2}
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(q["row"], q["reason"], q["column"]) for q in quarantine] == [
        (1, "empty_text", "question"),
        (2, "empty_text", "response"),
        (3, "duplicate_id", "id"),
    ]


def test_unreadable_file_is_an_error_naming_the_source(tmp_path: Path) -> None:
    folder = tmp_path / "orca"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"id": "x.1", "question": \n not json')
    with pytest.raises(SourceReadError, match=r"openorca \(Open-Orca/OpenOrca\): cannot read split 'train'"):
        prepare_source(SOURCES["openorca"], str(folder), tmp_path / "out", 1)


def test_folder_without_data_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceReadError, match=r"openorca \(Open-Orca/OpenOrca\): .* holds no data files"):
        read_source(SOURCES["openorca"], str(tmp_path))


def _orca_rows(prefix: str, n: int) -> str:
    return "".join(json.dumps({**ORCA, "id": f"{prefix}.{i}"}) + "\n" for i in range(n))


def test_every_data_file_of_a_folder_is_read_whatever_its_name(tmp_path: Path) -> None:
    """datasets' split inference reads only train.jsonl beside more_rows.jsonl: hala reads both."""
    (tmp_path / "train.jsonl").write_text(_orca_rows("a", 3))
    (tmp_path / "more_rows.jsonl").write_text(_orca_rows("b", 2))
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "validation.jsonl").write_text(_orca_rows("c", 1))
    (tmp_path / "README.md").write_text("# a local copy of the card: not data")
    table = read_source(SOURCES["openorca"], str(tmp_path))
    assert sorted(table.column("id").to_pylist()) == ["a.0", "a.1", "a.2", "b.0", "b.1", "c.0"]
    assert read_source(SOURCES["openorca"], str(tmp_path / "train.jsonl")).num_rows == 3  # one file


def test_a_folder_mixing_formats_or_holding_other_files_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(_orca_rows("a", 3))
    pq.write_table(pa.Table.from_pylist([{**ORCA, "id": "p.0"}]), tmp_path / "extra.parquet")
    with pytest.raises(
        SourceReadError, match=r"mixes data formats \(json: train.jsonl; parquet: extra.parquet\)"
    ):
        read_source(SOURCES["openorca"], str(tmp_path))
    (tmp_path / "extra.parquet").unlink()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        SourceReadError, match=r"not parquet/jsonl/json/csv data: .*notes.txt; .*move these out"
    ):
        read_source(SOURCES["openorca"], str(tmp_path))


def test_a_local_path_that_does_not_exist_is_an_error_not_a_hub_lookup(tmp_path: Path) -> None:
    for missing in (str(tmp_path / "nowhere"), "./data/openorca", "data/sources/openorca"):
        with pytest.raises(SourceReadError, match=r"the local path .* does not exist"):
            read_source(SOURCES["openorca"], missing)


# --- ReAlign-Alpaca and Hermes-3 as the hub serves them: turns whose keys differ --------------------


def test_realign_alpaca_reads_its_real_layout_with_categories_in_meta() -> None:
    """GAIR-NLP/ReAlign README: one JSON list of {id, items: [{from, value, category}, {from, value}]}."""
    spec = SOURCES["realign_alpaca"]
    table = read_source(spec, str(FIXTURES / "realign_alpaca"))
    # Only the human turn has a category, so datasets 5.2 types the turns as JSON values.
    assert isinstance(table.schema.field("items").type.value_type, pa.JsonType)
    prepared = normalise_table(spec, table)
    assert prepared.quarantined_by_reason() == {}
    assert prepared.kept.num_rows == table.num_rows
    first = prepared.kept.to_pylist()[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][0]["content"] == "Give three tips for staying healthy."
    assert json.loads(first["meta"]) == {"category": "advice_giving", "upstream_id": "0"}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_hermes3_turns_with_a_weight_on_some_turns_are_read_and_a_tool_turn_is_quarantined(
    tmp_path: Path,
) -> None:
    """Hermes-3 puts ``weight`` on some turns only: datasets types them List(Json); decoded, not refused."""
    rows = [
        {
            "conversations": [
                {"from": "human", "value": "Hi there"},
                {"from": "gpt", "value": "Hello", "weight": 1},
            ]
        },
        {
            "conversations": [
                {"from": "system", "value": "Be brief.", "weight": None},
                {"from": "human", "value": "Name a colour."},
                {"from": "gpt", "value": "Blue.", "weight": 1},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": "What is the weather?"},
                {"from": "tool", "value": '{"temp": 20}'},
                {"from": "gpt", "value": "It is 20 degrees."},
            ]
        },
    ]
    spec = SOURCES["hermes3"]
    table = read_source(spec, str(_write_jsonl(tmp_path / "hermes3", rows)))
    assert isinstance(table.schema.field("conversations").type.value_type, pa.JsonType)
    prepared = normalise_table(spec, table)
    assert prepared.kept.num_rows == 2
    assert prepared.quarantined_by_reason() == {"unknown_role": 1}
    kept = prepared.kept.to_pylist()
    assert [m["role"] for m in kept[1]["messages"]] == ["system", "user", "assistant"]
    assert kept[1]["messages"][2]["content"] == "Blue."


def test_a_json_turn_whose_text_is_not_a_string_names_the_column(tmp_path: Path) -> None:
    rows = [
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo", "weight": 1}]},
        {"conversations": [{"from": "human", "value": 7}, {"from": "gpt", "value": "Seven"}]},
    ]
    spec = SOURCES["hermes3"]
    table = read_source(spec, str(_write_jsonl(tmp_path / "hermes3", rows)))
    with pytest.raises(SourceSchemaError, match=r"hermes3 .*column 'conversations'"):
        normalise_table(spec, table)


@pytest.mark.parametrize(
    "text",
    [
        "\u200b\u200c\u200d",
        "\u200f\u200e",
        "\u2066\u2069 ",
        "\ufeff",
        "\u0640\u0640\u0640",
        "\u064e\u0650\u0651",
        "\u00a0\n",
        "\x0b\x1c\x1d",
        "\x1f\x85",
    ],
)
def test_text_that_shows_nothing_is_empty(tmp_path: Path, text: str) -> None:
    """Zero-width and bidi marks, tatweel or diacritics alone: empty text, quarantined as such."""
    rows = [
        ORCA,
        {**ORCA, "id": "x.2", "response": text},
        {**ORCA, "id": "x.3", "response": "\u0645\u064e\u0631\u062d\u0628\u0627"},
    ]
    counts = prepare_source(SOURCES["openorca"], str(_jsonl(tmp_path / "o", rows)), tmp_path / "out", 1)
    assert (counts.read, counts.kept, counts.quarantined) == (3, 2, {"empty_text": 1})


def test_a_valid_row_repeating_the_id_of_a_quarantined_one_is_kept(tmp_path: Path) -> None:
    rows = [{**ORCA, "response": ""}, ORCA, {**ORCA}]  # x.1 broken, then x.1 valid, then x.1 again
    counts = prepare_source(SOURCES["openorca"], str(_jsonl(tmp_path / "o", rows)), tmp_path / "out", 1)
    assert (counts.read, counts.kept) == (3, 1)
    assert counts.quarantined == {"duplicate_id": 1, "empty_text": 1}
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(q["row"], q["reason"]) for q in quarantine] == [(0, "empty_text"), (2, "duplicate_id")]
    kept = read_records(tmp_path / "out").to_pylist()
    assert [m["content"] for m in kept[0]["messages"]][-1] == ORCA["response"]


def test_text_that_is_not_utf8_is_an_error_naming_row_and_column(tmp_path: Path) -> None:
    good = json.dumps(ORCA).encode()
    bad = b'{"id": "x.2", "system_prompt": "", "question": "q\xff\xfe", "response": "r"}'
    (tmp_path / "train.jsonl").write_bytes(good + b"\n" + good.replace(b"x.1", b"x.3") + b"\n" + bad + b"\n")
    with pytest.raises(SourceReadError, match=r"row 2 of .* not valid UTF-8 in column\(s\) \['question'\]"):
        read_source(SOURCES["openorca"], str(tmp_path))


def test_read_errors_name_the_file_and_what_the_reader_said(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps(ORCA) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(ORCA) + '\n{"id": "x.9", "quest')  # truncated last line
    with pytest.raises(SourceReadError, match=r"from \S*b\.jsonl: .*JSON parse error.*in row 1"):
        read_source(SOURCES["openorca"], str(tmp_path))
    (tmp_path / "b.jsonl").write_text("")
    with pytest.raises(SourceReadError, match=r"empty data file\(s\) \S*b\.jsonl"):
        read_source(SOURCES["openorca"], str(tmp_path))


def test_parquet_files_whose_schemas_differ_are_named(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist([ORCA]), tmp_path / "a.parquet")
    renamed = {k if k != "response" else "answer": v for k, v in ORCA.items()}
    pq.write_table(pa.Table.from_pylist([renamed]), tmp_path / "b.parquet")  # another column name
    with pytest.raises(
        SourceReadError,
        match=r"(?s)a\.parquet, \S*b\.parquet \(each reads alone: their schemas differ\).*names don't match",
    ):
        read_source(SOURCES["openorca"], str(tmp_path))


# --- layouts and types the hub evidence fixes (see each module's "Evidence:" paragraph) -------------


def _orca_parquet(path: Path, prefix: str, n: int) -> None:
    pq.write_table(pa.Table.from_pylist([{**ORCA, "id": f"{prefix}.{i}"} for i in range(n)]), path)


def test_openorca_reads_the_gpt4_file_first_as_the_hub_layout_does(tmp_path: Path) -> None:
    """The hub root holds 1M-GPT4-Augmented.parquet and 3_5M-GPT3_5-Augmented.parquet and no configs.

    ``datasets`` infers one ``train`` split of both files, sorted by name (what a hub id goes through,
    here on a local copy of the layout, logo and card included); hala's local reading keeps that order.
    So the first rows of the split, the ones a ``limit`` keeps, are the GPT-4 rows.
    """
    import datasets

    hub = tmp_path / "hub"
    hub.mkdir()
    _orca_parquet(hub / "3_5M-GPT3_5-Augmented.parquet", "gpt35", 4)
    _orca_parquet(hub / "1M-GPT4-Augmented.parquet", "gpt4", 3)
    (hub / "README.md").write_text("---\nlicense: mit\npretty_name: Open Orca\n---\n# card\n")
    (hub / "OpenOrcaLogo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    inferred = datasets.load_dataset(str(hub), split="train[:3]")
    assert inferred["id"] == ["gpt4.0", "gpt4.1", "gpt4.2"]

    (hub / "OpenOrcaLogo.png").unlink()  # a local copy may not keep files that are not data
    spec = SOURCES["openorca"]
    full = read_source(spec, str(hub)).column("id").to_pylist()
    assert full == [f"gpt4.{i}" for i in range(3)] + [f"gpt35.{i}" for i in range(4)]
    assert read_source(spec, str(hub), limit=3).column("id").to_pylist() == full[:3]


def test_scp116k_flags_are_booleans_and_a_text_flag_is_refused(tmp_path: Path) -> None:
    spec = SOURCES["scp116k"]
    table = read_source(spec, str(FIXTURES / "scp116k"))
    for flag in ("is_o1_solution_same_with_matched_solution", "is_qwq_solution_same_with_matched_solution"):
        assert pa.types.is_boolean(table.schema.field(flag).type)
    row = table.slice(0, 1).to_pylist()[0]
    folder = _jsonl(tmp_path / "scp", [{**row, "is_qwq_solution_same_with_matched_solution": "True"}])
    with pytest.raises(
        SourceSchemaError,
        match=r"column 'is_qwq_solution_same_with_matched_solution' has the wrong type: expected bool",
    ):
        prepare_source(spec, str(folder), tmp_path / "out", 1)


# The values of instruction_source that the LaMini-instruction dataset card lists.
LAMINI_CARD_SOURCES = {
    "alpaca",
    "generated_flan",
    "generated_p3",
    "original_flan",
    "original_p3",
    "self_instruct_with_topic",
    "self_instruct_without_topic",
}


def test_lamini_keeps_the_instruction_source_in_meta() -> None:
    spec = SOURCES["lamini"]
    table = read_source(spec, str(FIXTURES / "lamini"))
    sources = table.column("instruction_source").to_pylist()
    assert set(sources) == LAMINI_CARD_SOURCES
    prepared = normalise_table(spec, table)
    assert prepared.quarantined_by_reason() == {}
    assert [json.loads(r["meta"])["instruction_source"] for r in prepared.kept.to_pylist()] == sources
