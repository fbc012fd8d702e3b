"""Contamination check: normalisation, planted items found after surface changes, clean ones not, counts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES
from hala.evaluation.contamination import (
    ContaminationScan,
    contamination_fractions,
    contamination_report,
    iter_record_texts,
    normalise_for_overlap,
    scan_contamination,
)
from hala.evaluation.translation import items_from_records
from hala.metrics import ARABIC_MARKS
from hala.prepare import normalise_table, read_source
from hala.sources import RECORD_SCHEMA, get_source

FILLER_AR = "كان الطقس معتدلاً في المدينة طوال الأسبوع الماضي وخرج الناس إلى الحدائق العامة"
FILLER_EN = "The weather stayed mild in the city all of last week and people went out to the parks"
HARAKAT = ["\u064e", "\u064f", "\u0650", "\u0652", "\u0651"]


def _benchmarks() -> dict[str, list[str]]:
    out = {}
    for key in ("mmlu", "mmmlu"):
        spec = get_source(key)
        records = normalise_table(spec, read_source(spec, str(FIXTURES / key))).kept
        out[key] = [item.text() for item in items_from_records(records)]
    return out


@pytest.fixture(scope="module")
def benchmarks() -> dict[str, list[str]]:
    return _benchmarks()


def _rediacritise(text: str, seed: int = 0) -> str:
    """Add harakat and tatweel after Arabic letters, swap punctuation, change alef/ya/ta marbuta spelling."""
    rng = random.Random(seed)
    out = []
    for ch in text.replace("ا", "أ").replace("ي", "ى").replace("ه ", "ة "):
        out.append(ch)
        if "\u0621" <= ch <= "\u064a" and rng.random() < 0.5:
            out.append(rng.choice(HARAKAT))
        if ch in "بتسل" and rng.random() < 0.3:
            out.append("\u0640")
    return "".join(out).replace(".", "؛").replace("،", " - ").replace("؟", "!!")


def test_normalisation() -> None:
    assert normalise_for_overlap("أَلْـــكِتَابُ، إلى مكتبةٍ!") == "الكتاب الي مكتبه"
    assert normalise_for_overlap("آخر ٱلأسبوع: ٣ أيام ۴") == "اخر الاسبوع 3 ايام 4"
    assert normalise_for_overlap("ﻻ Ｈello, WORLD_wide (S_4)") == "لا hello world wide s 4"
    assert ARABIC_MARKS.sub("", "ذَهَبَ") == "ذهب"


def test_planted_items_are_found_after_surface_changes(benchmarks: dict[str, list[str]]) -> None:
    ar_item, en_item = benchmarks["mmmlu"][5], benchmarks["mmlu"][24]
    planted_ar = f"{FILLER_AR}. {_rediacritise(ar_item)} {FILLER_AR}"
    assert ar_item not in planted_ar and normalise_for_overlap(ar_item) in normalise_for_overlap(planted_ar)
    planted_en = f"{FILLER_EN}: {en_item.upper().replace(' ', '  ').replace(',', ' ;')}"
    train = [FILLER_EN, planted_ar, FILLER_AR, planted_en]
    scan = scan_contamination(train, benchmarks, n=8)
    assert scan.contaminated_items() == {"mmlu": [24], "mmmlu": [5]}
    report = scan.report()
    assert report == contamination_report(train, benchmarks, n=8)
    for name in ("mmlu", "mmmlu"):
        row = report[name]
        assert row["items"] == 30 == row["checked"] + row["skipped_short"] + row["skipped_empty"]
        assert row["contaminated"] == 1 and row["fraction"] == pytest.approx(1 / row["checked"])
        assert row["train_texts"] == 4 and row["n"] == 8
    item_words = len(normalise_for_overlap(ar_item).split())
    assert item_words >= 8
    assert report["mmmlu"]["ngrams_matched"] == item_words - 8 + 1  # every 8-gram of the planted item


def test_clean_corpus_finds_nothing(benchmarks: dict[str, list[str]]) -> None:
    # the same words as the benchmark, shuffled: a bag-of-words match is not an n-gram match
    rng = random.Random(1)
    shuffled = []
    for text in benchmarks["mmmlu"] + benchmarks["mmlu"]:
        words = text.split()
        rng.shuffle(words)
        shuffled.append(" ".join(words))
    report = contamination_report([FILLER_AR, FILLER_EN, *shuffled], benchmarks)
    assert contamination_fractions(report) == {"mmlu": 0.0, "mmmlu": 0.0}
    assert all(row["ngrams_matched"] == 0 and row["ngrams"] > 0 for row in report.values())


def test_one_shared_ngram_is_enough_and_n_is_configurable() -> None:
    item = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    ten_words = "three four five six seven eight nine ten eleven twelve"
    train = [f"alpha beta {ten_words} gamma"]
    assert contamination_report(train, {"b": [item]}, n=8)["b"]["contaminated"] == 1
    report13 = contamination_report(train, {"b": [item]}, n=13)["b"]
    assert report13["contaminated"] == 0 and report13["ngrams"] == 2  # 14 words -> two 13-grams


def test_ngrams_do_not_span_two_training_texts() -> None:
    item = "one two three four five six seven eight"
    report = contamination_report(["one two three four", "five six seven eight"], {"b": [item]}, n=8)
    assert report["b"]["contaminated"] == 0


def test_short_items_are_whole_item_ngrams_or_skipped() -> None:
    bench = {
        "b": [
            "ما عاصمة المملكة العربية السعودية؟",  # 5 words < n: checked as one 5-gram
            "عاصمة فرنسا",  # 2 words < min_words: skipped
            "؟!…",  # no words: skipped
            "the quick brown fox jumps over the lazy dog",  # 9 words: two 8-grams, not in the corpus
        ]
    }
    train = ["سأل المعلم: ما عاصمةُ المملكة العربيّة السعودية؟ فأجاب الطالب", "عاصمة فرنسا باريس"]
    row = contamination_report(train, bench, n=8, min_words=4)["b"]
    assert row == {
        "items": 4,
        "checked": 2,
        "skipped_short": 1,
        "skipped_empty": 1,
        "contaminated": 1,
        "fraction": 0.5,
        "ngrams": 3,
        "ngrams_matched": 1,
        "n": 8,
        "train_texts": 2,
    }
    # part of a short item is not the item
    partial = contamination_report(["ما عاصمة المملكة العربية"], bench, n=8, min_words=4)["b"]
    assert partial["contaminated"] == 0


def test_streaming_in_small_batches_gives_the_same_report(benchmarks: dict[str, list[str]]) -> None:
    consumed = []

    def corpus() -> Iterator[str]:
        for i, text in enumerate([FILLER_AR, _rediacritise(benchmarks["mmmlu"][20]), FILLER_EN] * 3):
            consumed.append(i)
            yield text

    small = contamination_report(corpus(), benchmarks, batch_size=2)
    assert len(consumed) == 9
    assert small == contamination_report(list(corpus()), benchmarks, batch_size=4096)
    assert small["mmmlu"]["train_texts"] == 9 and small["mmmlu"]["contaminated"] >= 1


def test_shared_boilerplate_marks_every_item_that_carries_it(benchmarks: dict[str, list[str]]) -> None:
    # MMMLU items 19 and 20 open with the same instruction sentence ("this question refers to the following
    # information..."), longer than 8 words: a corpus holding one of them overlaps both. Counted as is, as
    # GPT-3's "dirty" definition does; the docs say so.
    scan = scan_contamination([benchmarks["mmmlu"][20]], benchmarks)
    assert scan.contaminated_items()["mmmlu"] == [19, 20]


def test_record_shards_are_streamed_turn_by_turn(tmp_path: Path, benchmarks: dict[str, list[str]]) -> None:
    rows = [
        {"id": "a", "source": "x", "messages": [{"role": "user", "content": FILLER_EN}], "meta": None},
        {
            "id": "b",
            "source": "x",
            "messages": [
                {"role": "user", "content": "ترجم"},
                {"role": "assistant", "content": benchmarks["mmmlu"][3]},
            ],
            "meta": None,
        },
    ]
    path = tmp_path / "shard-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA), path)
    texts = list(iter_record_texts([path], batch_rows=1))
    assert texts == [FILLER_EN, "ترجم", benchmarks["mmmlu"][3]]
    assert contamination_report(iter_record_texts([path]), benchmarks)["mmmlu"]["contaminated"] == 1


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_words=9"):
        contamination_report([], {"b": ["x"]}, n=8, min_words=9)
    assert ARABIC_MARKS.search("\u0640")


def test_scans_of_shards_merge_into_the_scan_of_the_whole(
    benchmarks: dict[str, list[str]], tmp_path: Path
) -> None:
    part1 = [FILLER_AR, _rediacritise(benchmarks["mmmlu"][5])]
    part2 = [benchmarks["mmlu"][24], FILLER_EN, "one two"]
    scan_contamination(part2, benchmarks).save(tmp_path / "part2.npz")  # as a shard task would
    part2_scan = ContaminationScan.load(tmp_path / "part2.npz")
    merged = scan_contamination(part1, benchmarks).merge(part2_scan)
    assert merged.report() == contamination_report(part1 + part2, benchmarks)
    assert merged.contaminated_items() == {"mmlu": [24], "mmmlu": [5]}
    with pytest.raises(ValueError, match="cannot merge"):
        merged.merge(scan_contamination(part1, benchmarks, n=13))
