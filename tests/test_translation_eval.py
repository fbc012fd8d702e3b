"""The translator benchmark on the MMLU/MMMLU fixtures: sampling, alignment, scoring with fake systems."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import FIXTURES
from hala.config import load_preset
from hala.evaluation.translation import (
    TranslationEvalError,
    align,
    direct_translate_fn,
    evaluate_system,
    items_from_records,
    run_benchmark,
    sample_questions,
    system_prompt,
)
from hala.metrics import metrics_main
from hala.prepare import normalise_table, read_source
from hala.sources import get_source
from hala.translate.engines import Generation, GenerationSettings, Message


def _records(key: str) -> pa.Table:
    spec = get_source(key)
    return normalise_table(spec, read_source(spec, str(FIXTURES / key))).kept


@pytest.fixture(scope="module")
def mmlu() -> pa.Table:
    return _records("mmlu")


@pytest.fixture(scope="module")
def mmmlu() -> pa.Table:
    return _records("mmmlu")


def test_sample_is_deterministic_sorted_and_independent_of_record_order(mmlu: pa.Table) -> None:
    first = sample_questions(mmlu, 10, seed=42)
    assert first == sample_questions(mmlu, 10, seed=42)
    assert [i.index for i in first] == sorted({i.index for i in first})  # no repeats, index order
    assert [i.index for i in sample_questions(mmlu, 10, seed=7)] != [i.index for i in first]
    rows = mmlu.to_pylist()
    random.Random(0).shuffle(rows)  # shards come in hash order: the sample must not depend on it
    assert sample_questions(rows, 10, seed=42) == first


def test_sample_is_uniform(mmlu: pa.Table) -> None:
    items = items_from_records(mmlu)
    rows = mmlu.to_pylist()
    draws = 3000
    counts = Counter(i.index for seed in range(draws) for i in sample_questions(rows, 5, seed))
    expected = draws * 5 / len(items)  # 500; sd ~ 20
    assert set(counts) == {i.index for i in items}
    assert all(abs(c - expected) < 100 for c in counts.values()), counts


def test_sample_larger_than_available_names_both_numbers(mmlu: pa.Table) -> None:
    with pytest.raises(TranslationEvalError, match="asked for 31 questions but only 30 MMLU items"):
        sample_questions(mmlu, 31, seed=42)
    with pytest.raises(TranslationEvalError, match="at least 1"):
        sample_questions(mmlu, 0, seed=42)
    assert len(sample_questions(mmlu, 30, seed=1)) == 30


def test_align_pairs_the_english_question_alone_with_its_arabic_question(
    mmlu: pa.Table, mmmlu: pa.Table
) -> None:
    """Report section 3: the source is the question (not its choices), the reference MMMLU's question."""
    samples = sample_questions(mmlu, 12, seed=42)
    alignment = align(samples, mmmlu)
    assert alignment.counts() == {"sampled": 12, "aligned": 12, "unaligned": {}}
    assert alignment.indices == [s.index for s in samples]
    # The fixture is cais/mmlu's order row for row, so the paired Arabic item is the same row.
    ar_by_index = {i.index: i for i in items_from_records(mmmlu)}
    for (en, ar), sample in zip(alignment.pairs, samples, strict=True):
        expected_ar = ar_by_index[sample.index]
        assert expected_ar.subject == sample.subject
        assert (en, ar) == (sample.question.strip(), expected_ar.question.strip())
        assert not any(choice.strip() and choice.strip() in en.split("\n") for choice in sample.choices)


def test_align_counts_items_without_a_counterpart(mmlu: pa.Table, mmmlu: pa.Table) -> None:
    samples = sample_questions(mmlu, 30, seed=3)
    rows = mmmlu.to_pylist()
    dropped = {json.loads(r["meta"])["index"] for r in rows[:4]}
    kept = rows[4:]
    assert "virology" not in {json.loads(r["meta"])["subject"] for r in rows}
    moved = json.loads(kept[0]["meta"])
    kept[0] = {**kept[0], "meta": json.dumps({**moved, "subject": "virology"})}
    alignment = align(samples, kept)
    assert alignment.counts() == {"sampled": 30, "aligned": 25, "unaligned": {"no_arabic_item": 5}}
    assert set(alignment.unaligned["no_arabic_item"]) == dropped | {moved["index"]}
    with pytest.raises(TranslationEvalError, match=r"none of the 30 sampled .*no_arabic_item': 30"):
        align(samples, [])


def test_reference_as_translation_scores_100_and_files_reproduce_the_numbers(
    mmlu: pa.Table, mmmlu: pa.Table, tmp_path: Path
) -> None:
    alignment = align(sample_questions(mmlu, 16, seed=42), mmmlu)
    reference = dict(alignment.pairs)
    result = evaluate_system("oracle", lambda texts: [reference[t] for t in texts], alignment.pairs, tmp_path)
    assert result["n"] == 16 and result["failed"] == 0
    assert result["bleu"] == pytest.approx(100.0)
    assert result["chrf"] == pytest.approx(100.0)
    assert result["rouge_l_arabic"] == pytest.approx(100.0)
    assert result["rouge_l"] < 100.0  # the report-compatible figure sees only digits and Latin words
    folder = Path(result["dir"])
    for name in ("sources.en.txt", "hypotheses.ar.txt", "references.ar.txt"):
        assert len((folder / name).read_text(encoding="utf-8").splitlines()) == 16, name
    from_files = metrics_main(folder / "hypotheses.ar.txt", folder / "references.ar.txt")
    assert from_files == pytest.approx({k: result[k] for k in from_files})
    assert json.loads((folder / "scores.json").read_text())["bleu"] == pytest.approx(result["bleu"])


def test_bad_translators_score_low_and_failures_are_counted(
    mmlu: pa.Table, mmmlu: pa.Table, tmp_path: Path
) -> None:
    alignment = align(sample_questions(mmlu, 16, seed=42), mmmlu)
    untranslated = evaluate_system(
        "copy-source", lambda texts: texts, alignment.pairs, tmp_path, alignment.indices
    )
    assert (
        untranslated["bleu"] < 20.0 and untranslated["chrf"] < 30.0 and untranslated["rouge_l_arabic"] < 20.0
    )
    reference = dict(alignment.pairs)

    def half_failed(texts: list[str]) -> list[str | None]:
        return [reference[t] if i % 2 else None for i, t in enumerate(texts)]

    partial = evaluate_system("half/failed", half_failed, alignment.pairs, tmp_path)
    assert partial["failed"] == 8
    assert 0.0 < partial["chrf"] < 100.0
    assert Path(partial["dir"]).name == "half_failed"
    items = [json.loads(line) for line in (Path(partial["dir"]) / "items.jsonl").read_text().splitlines()]
    assert [item["hypothesis"] is None for item in items] == [i % 2 == 0 for i in range(16)]
    with pytest.raises(TranslationEvalError, match="returned 15 outputs for 16 texts"):
        evaluate_system("short", lambda texts: texts[1:], alignment.pairs, tmp_path)


class _Echo:
    """An engine that answers every conversation with a fixed text and records what it was asked."""

    def __init__(self, answer: str = "  ترجمة\n") -> None:
        self.answer = answer
        self.conversations: list[list[Message]] = []
        self.settings: list[GenerationSettings] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def chat(self, conversations: Sequence[list[Message]], settings: GenerationSettings) -> list[Generation]:
        self.conversations += list(conversations)
        self.settings.append(settings)
        return [Generation(self.answer, "stop", 1, 1) for _ in conversations]


def test_paper_prompts_are_the_reports_verbatim_per_system() -> None:
    prompts = load_preset("paper").eval.translation_prompts
    lfm2 = (
        "You are a professional translation engine. Translate English to Modern Standard Arabic. "
        "Reply ONLY with the Arabic translation—no quotes, notes, or explanations. "
        "Translate everything that follows into Arabic: {text}"
    )
    plain = "Translate everything that follows into Arabic: {text}"
    assert prompts == {"translator_base": lfm2, "translator": lfm2, "teacher": plain, "teacher_fp8": plain}
    assert system_prompt(prompts, "teacher_fp8") == plain
    with pytest.raises(TranslationEvalError, match="unknown system 'gpt'"):
        system_prompt(prompts, "gpt")


def test_direct_translation_fills_the_prompt_verbatim_greedy_once_and_keeps_the_output(
    mmlu: pa.Table, mmmlu: pa.Table, tmp_path: Path
) -> None:
    """No chunking, masking, checks or retries: one greedy request per question, output stripped."""
    prompt = load_preset("paper").eval.translation_prompts["teacher"]
    engine = _Echo()
    texts = ["What is {x} + 1?", "Line one.\nLine two: 50% off {sale}."]
    assert direct_translate_fn(engine, prompt, 64)(texts) == ["ترجمة", "ترجمة"]
    assert [c for c in engine.conversations] == [
        [{"role": "user", "content": f"Translate everything that follows into Arabic: {t}"}] for t in texts
    ]
    assert len(engine.settings) == 1 and engine.settings[0].temperature == 0.0
    assert engine.settings[0].max_new_tokens == 64
    # An output in English is scored as written, not refused or retried.
    engine = _Echo("Not Arabic at all.")
    result = run_benchmark(
        "teacher", direct_translate_fn(engine, prompt, 64), prompt, mmlu, mmmlu, 4, 42, tmp_path
    )
    assert result["failed"] == 0 and len(engine.conversations) == 4
    folder = Path(result["dir"])
    assert (folder / "prompt.txt").read_text() == prompt
    assert (folder / "hypotheses.ar.txt").read_text().splitlines() == ["Not Arabic at all."] * 4
    assert result["alignment"] == {"sampled": 4, "aligned": 4, "unaligned": {}}


def test_hala_eval_translation_runs_the_protocol_on_a_model_folder(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hala.cli import main

    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "translation",
            "--model",
            str(tiny_models["translator-base"]),
            "--system",
            "translator_base",
            "--mmlu",
            str(FIXTURES / "mmlu"),
            "--mmmlu",
            str(FIXTURES / "mmmlu"),
            "--n",
            "3",
            "--seed",
            "1",
            "--out",
            str(out),
            "--preset",
            "tiny",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("translator_base: n=3 BLEU ") and "chrF++" in printed
    folder = out / "translator_base"
    sources = (folder / "sources.en.txt").read_text(encoding="utf-8").splitlines()
    mmlu_questions = {i.question.strip() for i in items_from_records(_records("mmlu"))}
    assert len(sources) == 3 and set(sources) <= mmlu_questions
    assert len((folder / "hypotheses.ar.txt").read_text(encoding="utf-8").splitlines()) == 3
    assert json.loads((folder / "scores.json").read_text())["n"] == 3
    assert (folder / "prompt.txt").read_text().startswith("You are a professional translation engine.")


# --- MMMLU's index column, as the real file lays it out -------------------------------------------
# openai/MMMLU test/mmlu_AR-XY.csv restarts its unnamed first column at 0 for every subject (see
# src/hala/sources/mmmlu.py for the evidence); older fixtures here assumed one global index.

SUBJECTS = ["abstract_algebra"] * 3 + ["anatomy"] * 3 + ["astronomy"] * 2


def _mmlu_table() -> pa.Table:
    return pa.table(
        {
            "question": [f"English question {i} ({s})" for i, s in enumerate(SUBJECTS)],
            "subject": SUBJECTS,
            "choices": [[f"c{i}{k}" for k in "abcd"] for i in range(len(SUBJECTS))],
            "answer": [i % 4 for i in range(len(SUBJECTS))],
        }
    )


def _mmmlu_table(layout: str, order: Sequence[int] | None = None) -> pa.Table:
    """The Arabic twin of ``_mmlu_table`` with a per-subject or global first column, rows in ``order``."""
    rows = []
    within: dict[str, int] = {}
    for i, subject in enumerate(SUBJECTS):
        within[subject] = within.get(subject, -1) + 1
        index = within[subject] if layout == "per_subject" else i
        rows.append([index, f"سؤال عربي {i}", *[f"خ{i}{k}" for k in "abcd"], "ABCD"[i % 4], subject])
    rows = [rows[i] for i in order] if order is not None else rows
    columns = ["Unnamed: 0", "Question", "A", "B", "C", "D", "Answer", "Subject"]
    return pa.table({c: [r[k] for r in rows] for k, c in enumerate(columns)})


@pytest.mark.parametrize("layout", ["per_subject", "global"])
def test_mmmlu_index_layouts_keep_every_row_and_pair_each_question_with_its_own(layout: str) -> None:
    mmlu = normalise_table(get_source("mmlu"), _mmlu_table()).kept
    prepared = normalise_table(get_source("mmmlu"), _mmmlu_table(layout))
    # A valid row is never quarantined because of the index column (per subject, it repeats).
    assert prepared.quarantined_by_reason() == {} and prepared.kept.num_rows == len(SUBJECTS)
    alignment = align(sample_questions(mmlu, len(SUBJECTS), seed=1), prepared.kept)
    assert alignment.counts() == {"sampled": 8, "aligned": 8, "unaligned": {}}
    for (en, ar), index in zip(alignment.pairs, alignment.indices, strict=True):
        assert en.startswith(f"English question {index} ") and ar == f"سؤال عربي {index}"


def test_mmmlu_subjects_in_another_order_still_pair_by_subject_and_position() -> None:
    mmlu = normalise_table(get_source("mmlu"), _mmlu_table()).kept
    # astronomy first, then anatomy, then abstract_algebra: positions within a subject are kept.
    order = [6, 7, 3, 4, 5, 0, 1, 2]
    mmmlu = normalise_table(get_source("mmmlu"), _mmmlu_table("per_subject", order)).kept
    alignment = align(sample_questions(mmlu, len(SUBJECTS), seed=1), mmmlu)
    assert alignment.counts()["aligned"] == 8
    for (en, ar), index in zip(alignment.pairs, alignment.indices, strict=True):
        assert en.startswith(f"English question {index} ") and ar == f"سؤال عربي {index}"


def test_a_quarantined_mmmlu_row_leaves_its_neighbours_paired_correctly() -> None:
    table = _mmmlu_table("per_subject")
    questions = table.column("Question").to_pylist()
    questions[1] = "   "  # empty text: quarantined, but it still holds position 1 of its subject
    table = table.set_column(1, "Question", pa.array(questions))
    prepared = normalise_table(get_source("mmmlu"), table)
    assert prepared.quarantined_by_reason() == {"empty_text": 1}
    mmlu = normalise_table(get_source("mmlu"), _mmlu_table()).kept
    alignment = align(sample_questions(mmlu, len(SUBJECTS), seed=1), prepared.kept)
    assert alignment.unaligned == {"no_arabic_item": [1]}
    for (_, ar), index in zip(alignment.pairs, alignment.indices, strict=True):
        assert ar == f"سؤال عربي {index}"
