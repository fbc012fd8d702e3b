"""The translator's training set: two directions per pair, deduplication, leak-free held-out split."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hala.bilingual import (
    EXAMPLE_SCHEMA,
    BilingualCounts,
    ExampleBuilder,
    build_bilingual_set,
    build_examples,
    opus_pairs,
    teacher_pairs,
    write_examples,
)
from hala.sources import RECORD_SCHEMA
from hala.translate.conversations import TEACHER_SCHEMA

EN_AR = "Translate into Arabic:\n{x}"
AR_EN = "ترجم إلى الإنجليزية:\n{x}"


def _build(
    pairs: list[tuple[str, str, str]], heldout_fraction: float = 0.0
) -> tuple[pa.Table, pa.Table, BilingualCounts]:
    return build_examples(iter(pairs), EN_AR, AR_EN, heldout_fraction)


def _synthetic(n: int) -> list[tuple[str, str, str]]:
    return [("opus100", f"Sentence number {i} is here.", f"الجملة رقم {i} هنا.") for i in range(n)]


def test_each_pair_becomes_two_directed_examples() -> None:
    train, held, counts = _build([("opus100", "  Good morning. ", "صباح الخير.\n")])
    assert held.num_rows == 0
    assert train.schema == EXAMPLE_SCHEMA
    rows = train.to_pylist()
    assert [r["direction"] for r in rows] == ["en-ar", "ar-en"]
    assert rows[0]["messages"] == [
        {"role": "user", "content": "Translate into Arabic:\nGood morning."},
        {"role": "assistant", "content": "صباح الخير."},
    ]
    assert rows[1]["messages"] == [
        {"role": "user", "content": "ترجم إلى الإنجليزية:\nصباح الخير."},
        {"role": "assistant", "content": "Good morning."},
    ]
    assert rows[0]["pair_id"] == rows[1]["pair_id"]
    assert [r["id"] for r in rows] == [f"{rows[0]['pair_id']}:en-ar", f"{rows[0]['pair_id']}:ar-en"]
    assert {r["origin"] for r in rows} == {"opus100"}
    assert counts == BilingualCounts(pairs_in=1, dropped={}, train_examples=2, heldout_examples=0)


def test_pair_ids_are_stable_and_distinct() -> None:
    first, _, _ = _build(_synthetic(50))
    again, _, _ = _build(_synthetic(50))
    assert first.column("id").to_pylist() == again.column("id").to_pylist()
    assert len(set(first.column("pair_id").to_pylist())) == 50
    assert len(set(first.column("id").to_pylist())) == 100


def test_dedupe_on_whitespace_normalised_text() -> None:
    pairs = [
        ("openorca.instr", "What is  the time?", "كم  الساعة؟"),
        ("openorca.resp", " What is the\ntime? ", "كم\tالساعة؟"),  # same pair up to whitespace
        ("opus100", "What is the time?", "ما هو الوقت؟"),  # same English, other Arabic: kept
        ("opus100", "What is the time?", "كم الساعة؟"),  # duplicate again
        ("opus100", "what is the time?", "كم الساعة؟"),  # case differs: kept
    ]
    train, held, counts = _build(pairs)
    assert counts.dropped == {"duplicate_pair": 2}
    assert train.num_rows + held.num_rows == 2 * 3
    # The first occurrence is the one kept, with its origin.
    assert train.column("origin").to_pylist()[:2] == ["openorca.instr", "openorca.instr"]


@pytest.mark.parametrize(
    ("en", "ar"),
    [("", "نص"), ("text", ""), ("   \n", "نص"), ("text", "\t "), (None, "نص"), ("text", None)],
)
def test_empty_side_is_dropped(en: str | None, ar: str | None) -> None:
    train, held, counts = build_examples(iter([("opus100", en, ar)]), EN_AR, AR_EN, 0.0)  # type: ignore[list-item]
    assert counts.dropped == {"empty_side": 1}
    assert counts.pairs_in == 1
    assert train.num_rows == held.num_rows == 0
    assert train.schema == EXAMPLE_SCHEMA


def test_counts_add_up() -> None:
    pairs = [*_synthetic(30), *_synthetic(10), ("opus100", "", "x"), ("opus100", "y", " ")]
    train, held, counts = _build(pairs, heldout_fraction=0.2)
    kept = len({r["pair_id"] for r in [*train.to_pylist(), *held.to_pylist()]})
    assert kept == 30
    assert counts.dropped == {"duplicate_pair": 10, "empty_side": 2}
    assert counts.pairs_in == len(pairs) == kept + sum(counts.dropped.values())
    assert (counts.train_examples, counts.heldout_examples) == (train.num_rows, held.num_rows)
    assert counts.train_examples + counts.heldout_examples == 2 * kept


def test_no_pairs() -> None:
    train, held, counts = _build([], heldout_fraction=0.5)
    assert (train.num_rows, held.num_rows) == (0, 0)
    assert train.schema == held.schema == EXAMPLE_SCHEMA
    assert counts == BilingualCounts()


def test_split_keeps_both_directions_together_and_matches_fraction() -> None:
    n, fraction = 2000, 0.1
    train, held, counts = _build(_synthetic(n), heldout_fraction=fraction)
    train_pairs = Counter(train.column("pair_id").to_pylist())
    held_pairs = Counter(held.column("pair_id").to_pylist())
    assert not set(train_pairs) & set(held_pairs)
    assert set(train_pairs.values()) == set(held_pairs.values()) == {2}
    assert len(train_pairs) + len(held_pairs) == n
    assert 0.5 * fraction * n <= len(held_pairs) <= 1.5 * fraction * n
    assert counts.heldout_examples == 2 * len(held_pairs)
    # Both directions of every held-out pair are there.
    assert Counter(held.column("direction").to_pylist()) == {
        "en-ar": len(held_pairs),
        "ar-en": len(held_pairs),
    }


def test_split_is_deterministic_and_monotone_in_fraction() -> None:
    _, held_small, _ = _build(_synthetic(500), heldout_fraction=0.1)
    _, held_again, _ = _build(_synthetic(500), heldout_fraction=0.1)
    _, held_large, _ = _build(_synthetic(500), heldout_fraction=0.3)
    small = set(held_small.column("pair_id").to_pylist())
    assert small == set(held_again.column("pair_id").to_pylist())
    assert small < set(held_large.column("pair_id").to_pylist())


@pytest.mark.parametrize(("fraction", "held_rows"), [(0.0, 0), (1.0, 400)])
def test_split_extremes(fraction: float, held_rows: int) -> None:
    train, held, _ = _build(_synthetic(200), heldout_fraction=fraction)
    assert held.num_rows == held_rows
    assert train.num_rows == 400 - held_rows


def test_teacher_pairs_yield_instruction_and_response() -> None:
    tuples = pa.Table.from_pylist(
        [
            {
                "id": "t1",
                "system_en": "Be kind.",
                "system_ar": "كن لطيفا.",
                "instr_en": "Say hello.",
                "instr_ar": "قل مرحبا.",
                "resp_en": "Hello.",
                "resp_ar": "مرحبا.",
            },
            {
                "id": "t2",
                "system_en": "",
                "system_ar": "",
                "instr_en": "Count to two.",
                "instr_ar": "عد إلى اثنين.",
                "resp_en": "One, two.",
                "resp_ar": "واحد، اثنان.",
            },
        ],
        schema=TEACHER_SCHEMA,
    )
    assert list(teacher_pairs(tuples)) == [
        ("openorca.instr", "Say hello.", "قل مرحبا."),
        ("openorca.resp", "Hello.", "مرحبا."),
        ("openorca.instr", "Count to two.", "عد إلى اثنين."),
        ("openorca.resp", "One, two.", "واحد، اثنان."),
    ]


def test_opus_pairs_read_user_as_english_and_assistant_as_arabic() -> None:
    accepted = pa.Table.from_pylist(
        [
            {
                "id": "o1",
                "source": "opus100",
                "messages": [
                    {"role": "user", "content": "Thank you."},
                    {"role": "assistant", "content": "شكرا لك."},
                ],
                "meta": "{}",
            },
            {
                "id": "o2",
                "source": "opus100",
                "messages": [{"role": "assistant", "content": "نعم."}, {"role": "user", "content": "Yes."}],
                "meta": "{}",
            },
            {
                "id": "o3",
                "source": "opus100",
                "messages": [{"role": "user", "content": "Alone."}],
                "meta": "{}",
            },
        ],
        schema=RECORD_SCHEMA,
    )
    pairs = list(opus_pairs(accepted))
    assert pairs == [
        ("opus100", "Thank you.", "شكرا لك."),
        ("opus100", "Yes.", "نعم."),
        ("opus100", "Alone.", ""),
    ]
    # The record without an Arabic side is dropped when building examples.
    _, _, counts = _build(pairs)
    assert counts.dropped == {"empty_side": 1}


def test_teacher_and_opus_pairs_combine() -> None:
    def pairs() -> Iterator[tuple[str, str, str]]:
        yield ("openorca.instr", "Say hello.", "قل مرحبا.")
        yield ("opus100", "Say hello.", "قل مرحبا.")  # the same pair from OPUS: a duplicate
        yield ("opus100", "Thank you.", "شكرا لك.")

    train, _, counts = build_examples(pairs(), EN_AR, AR_EN, 0.0)
    assert counts.pairs_in == 3
    assert counts.dropped == {"duplicate_pair": 1}
    assert Counter(train.column("origin").to_pylist()) == {"openorca.instr": 2, "opus100": 2}


def test_paper_trains_en_to_ar_only_one_example_per_pair_as_the_report_counts() -> None:
    """Report 2.4: 405K x 2 (question, response) + ~440K OPUS = ~1.26M examples "for E->A"."""
    from hala.config import load_preset

    translator = load_preset("paper").translator
    assert translator.directions == ["en-ar"]
    teacher = pa.Table.from_pylist(
        [
            {"id": f"t{i}", "instr_en": f"Question {i}?", "instr_ar": f"سؤال {i}؟"}
            | {"resp_en": f"Answer {i}.", "resp_ar": f"جواب {i}."}
            for i in range(5)
        ]
    )
    pairs = [*teacher_pairs(teacher), *_synthetic(7)]
    train, _, counts = build_examples(
        iter(pairs), translator.prompt_en_ar, translator.prompt_ar_en, 0.0, translator.directions
    )
    # 5 rows x 2 (question and response) + 7 OPUS pairs, each once, English to Arabic.
    assert train.num_rows == 5 * 2 + 7 == counts.train_examples
    assert set(train.column("direction").to_pylist()) == {"en-ar"}
    both, _, _ = build_examples(iter(pairs), EN_AR, AR_EN, 0.0, ["en-ar", "ar-en"])
    assert both.num_rows == 2 * train.num_rows


def test_directions_are_validated() -> None:
    with pytest.raises(ValueError, match="prompt_ar_en"):
        build_examples(iter(_synthetic(1)), EN_AR, None, 0.0, ["ar-en"])
    with pytest.raises(ValueError, match="subset"):
        build_examples(iter(_synthetic(1)), EN_AR, AR_EN, 0.0, ["en-fr"])


def test_a_preset_asking_for_ar_en_without_its_prompt_fails_at_load(tmp_path) -> None:
    from hala.config import PresetError, load_preset, resolve_preset_path

    path = tmp_path / "x.yaml"
    override = "translator:\n  directions: [en-ar, ar-en]\n  prompt_ar_en: null\n"
    path.write_text(f"extends: {resolve_preset_path('tiny')}\n{override}")
    with pytest.raises(PresetError, match="prompt_ar_en"):
        load_preset(path)


def test_judge_acceptance_sums_every_shard_beside_the_reports_rate(tmp_path) -> None:
    from hala.stages.bilingual import judge_acceptance

    dirs = []
    for shard, (read, kept) in enumerate([(10, 4), (6, 3)]):
        folder = tmp_path / f"judge-{shard}"
        folder.mkdir()
        (folder / "counts.json").write_text(
            json.dumps({"read": read, "kept": kept, "quarantined": read - kept})
        )
        dirs.append(str(folder))
    figures = judge_acceptance(dirs).metrics()
    assert (figures["judge.judged"], figures["judge.accepted"]) == (16.0, 7.0)
    assert figures["judge.acceptance_rate"] == pytest.approx(7 / 16)
    assert figures["judge.report_accepted"] == 439_592
    assert figures["judge.report_acceptance_rate"] == pytest.approx(0.4396, abs=1e-4)


# --- streamed: the stage writes the same files a few thousand rows at a time -------------------------


def _tables(out: Path) -> tuple[pa.Table, pa.Table]:
    return pq.read_table(out / "train.parquet"), pq.read_table(out / "heldout.parquet")


def test_streamed_examples_are_the_rows_build_examples_gives(tmp_path: Path) -> None:
    # Repeats far apart (each duplicate lands in another written batch than its first occurrence).
    pairs = [*_synthetic(40), *_synthetic(25), ("opus100", "", "x"), *_synthetic(50)]
    train, held, counts = _build(pairs, heldout_fraction=0.25)
    for batch_rows in (1, 3, 1000):
        builder = ExampleBuilder(EN_AR, AR_EN, 0.25)
        found = write_examples(iter(pairs), builder, tmp_path / str(batch_rows), batch_rows=batch_rows)
        streamed_train, streamed_held = _tables(tmp_path / str(batch_rows))
        assert found == counts
        assert streamed_train.schema == streamed_held.schema == EXAMPLE_SCHEMA
        assert streamed_train.to_pylist() == train.to_pylist()
        assert streamed_held.to_pylist() == held.to_pylist()


def test_no_pairs_still_writes_both_files(tmp_path: Path) -> None:
    counts = write_examples(iter([]), ExampleBuilder(EN_AR, AR_EN, 0.5), tmp_path)
    assert counts == BilingualCounts()
    assert [t.num_rows for t in _tables(tmp_path)] == [0, 0]


def _folder(root: Path, name: str, table: pa.Table) -> str:
    folder = root / name
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "output.parquet", row_group_size=3)
    return str(folder)


def test_the_set_is_built_from_shard_folders_teacher_first(tmp_path: Path) -> None:
    teacher = [
        pa.Table.from_pylist(
            [
                {"id": f"t{i}", "system_en": "", "system_ar": "", "instr_en": f"Question {i}?"}
                | {"instr_ar": f"سؤال {i}؟", "resp_en": f"Answer {i}.", "resp_ar": f"جواب {i}."}
                for i in range(start, start + n)
            ],
            schema=TEACHER_SCHEMA,
        )
        for start, n in ((0, 4), (4, 0), (4, 5))
    ]
    opus = [
        pa.Table.from_pylist(
            [
                {
                    "id": f"opus100:{i}",
                    "source": "opus100",
                    "messages": [
                        {"role": "user", "content": en},
                        {"role": "assistant", "content": ar},
                    ],
                    "meta": None,
                }
                for i, (_, en, ar) in enumerate(part)
            ],
            schema=RECORD_SCHEMA,
        )
        for part in (_synthetic(6), [("opus100", "Question 1?", "سؤال 1؟"), *_synthetic(3)])
    ]
    teacher_dirs = [_folder(tmp_path, f"teacher-{i}", t) for i, t in enumerate(teacher)]
    judged_dirs = [_folder(tmp_path, f"judge-{i}", t) for i, t in enumerate(opus)]
    result = build_bilingual_set(teacher_dirs, judged_dirs, tmp_path / "out", EN_AR, AR_EN, 0.3)
    pairs = [*teacher_pairs(pa.concat_tables(teacher)), *opus_pairs(pa.concat_tables(opus))]
    train, held, counts = _build(pairs, heldout_fraction=0.3)
    assert (result.counts, result.teacher_rows, result.opus_accepted) == (counts, 9, 10)
    assert counts.dropped == {"duplicate_pair": 4}  # OPUS repeats a teacher pair and three of its own
    written_train, written_held = _tables(tmp_path / "out")
    assert written_train.to_pylist() == train.to_pylist()
    assert written_held.to_pylist() == held.to_pylist()
