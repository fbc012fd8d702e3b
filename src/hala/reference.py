"""The HALA technical report's published numbers, as data: one place, checked against the report's text.

``tests/test_reference.py`` reads ``shared/reference/hala-technical-report.txt`` and checks every figure
here against it. Table 1 scores are percentages on the six OALL tasks (benchmark keys of
``hala.evaluation.benchmarks``); Table 2 scores are BLEU, ROUGE-L and chrF++ points.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE1_TASKS: tuple[str, ...] = (
    "alghafa",
    "arabic_mmlu",
    "arabic_exams",
    "madinah_qa",
    "aratrust",
    "arabic_mmlu_ht",
)


# The report's column names for our benchmark keys.
TASK_NAMES = {
    "alghafa": "AlGhafa",
    "arabic_mmlu": "ArabicMMLU",
    "arabic_exams": "EXAMS",
    "madinah_qa": "MadinahQA",
    "aratrust": "AraTrust",
    "arabic_mmlu_ht": "ArbMMLU-HT",
    "average": "Average",
}


@dataclass(frozen=True)
class Table1Row:
    """One row of the report's Table 1: a model's six task scores (%) and their unweighted mean."""

    bucket: str  # "nano" (<= 2B) or "small" (7B-9B)
    model: str
    params: str
    scores: tuple[float, float, float, float, float, float]  # in TABLE1_TASKS order
    average: float
    base: str | None = None  # for a HALA model: the base it was fine-tuned from and merged with

    def by_task(self) -> dict[str, float]:
        """The scores keyed by benchmark, with ``average``."""
        return {**dict(zip(TABLE1_TASKS, self.scores, strict=True)), "average": self.average}


def _row(bucket: str, model: str, params: str, *values: float, base: str | None = None) -> Table1Row:
    *scores, average = values
    return Table1Row(bucket, model, params, tuple(scores), average, base)  # type: ignore[arg-type]


TABLE1: tuple[Table1Row, ...] = (
    _row("nano", "meta-llama/Llama-3.2-1B", "1B", 33.9, 26.5, 21.2, 25.7, 37.1, 23.9, 28.0),
    _row("nano", "Qwen/Qwen2-1.5B-Instruct", "1.5B", 53.1, 49.2, 35.2, 45.5, 68.9, 37.4, 48.2),
    _row("nano", "Qwen/Qwen2.5-1.5B-Instruct", "1.5B", 48.4, 43.5, 31.8, 38.2, 70.8, 35.9, 44.8),
    _row("nano", "Sakalti/Saka-1.5B", "1.5B", 51.4, 40.0, 31.3, 31.5, 47.5, 33.5, 39.2),
    _row("nano", "Qwen/Qwen3-1.7B-Base", "1.7B", 56.8, 49.7, 38.2, 40.0, 75.6, 43.9, 50.7),
    _row("nano", "Qwen/Qwen1.5-1.8B", "1.8B", 32.7, 26.7, 23.8, 26.0, 31.5, 23.6, 27.4),
    _row("nano", "silma-ai/SILMA-Kashif-2B-Instruct-v1.0", "2B", 59.7, 45.6, 33.1, 38.8, 73.3, 35.8, 47.7),
    _row("nano", "google/gemma-2-2b-it", "2B", 34.1, 30.1, 23.6, 20.1, 31.2, 23.4, 27.1),
    _row("nano", "LiquidAI/LFM2-350M", "350M", 39.0, 35.2, 30.9, 28.3, 43.3, 29.1, 34.3),
    _row("nano", "HALA-350M", "350M", 51.4, 41.2, 36.9, 34.5, 52.1, 35.4, 41.9, base="LiquidAI/LFM2-350M"),
    _row("nano", "LiquidAI/LFM2-700M", "700M", 50.1, 38.3, 34.3, 32.5, 56.3, 37.2, 41.4),
    _row("nano", "HALA-700M", "700M", 55.5, 45.9, 40.6, 34.7, 65.2, 39.4, 46.9, base="LiquidAI/LFM2-700M"),
    _row("nano", "LiquidAI/LFM2-1.2B", "1.2B", 53.8, 45.2, 35.0, 34.7, 65.6, 43.4, 46.3),
    _row("nano", "HALA-1.2B", "1.2B", 59.2, 48.6, 43.4, 41.6, 71.7, 44.2, 51.4, base="LiquidAI/LFM2-1.2B"),
    _row(
        "small", "CohereForAI/c4ai-command-r7b-arabic-02-2025", "7B", 74.8, 59.3, 65.0, 63.8, 80.5, 50.1, 65.6
    ),
    _row("small", "JasperV13/Yehia-7B-DPO-Reasoning-preview", "7B", 75.1, 66.3, 51.8, 54.9, 81.9, 55.1, 64.2),
    _row("small", "Navid-AI/Yehia-7B-preview", "7B", 70.8, 64.9, 52.1, 54.4, 87.5, 53.4, 63.9),
    _row("small", "JasperV13/Yehia-7B-Reasoning-preview", "7B", 75.2, 66.3, 52.7, 55.0, 80.8, 55.2, 64.2),
    _row("small", "ALLaM-AI/ALLaM-7B-Instruct-preview", "7B", 69.5, 64.9, 51.6, 54.2, 86.9, 52.8, 63.3),
    _row("small", "Qwen/Qwen2-7B-Instruct", "7B", 73.2, 60.0, 47.3, 59.5, 82.8, 51.3, 62.4),
    _row("small", "Qwen/Qwen3-8B-Base", "8B", 74.8, 65.0, 52.5, 52.2, 83.4, 61.5, 64.9),
    _row("small", "QCRI/Fanar-1-9B-Instruct", "9B", 76.4, 65.8, 52.7, 73.3, 88.3, 58.6, 69.2),
    _row("small", "HALA-9B", "9B", 78.3, 65.6, 53.8, 70.4, 89.6, 61.4, 69.9, base="QCRI/Fanar-1-9B-Instruct"),
)


@dataclass(frozen=True)
class Table2Row:
    """One row of the report's Table 2 (EN->AR on 500 MMLU questions)."""

    block: str  # "teacher" or "translator"
    system: str  # our system key: teacher, teacher_fp8, translator_base, translator
    label: str  # the report's name for it
    bleu: float
    rouge_l: float
    chrf: float
    # The deltas as the report prints them (from unrounded scores: 53.5 - 53.1 is printed +0.3).
    deltas: tuple[float, float, float] | None = None


TABLE2: tuple[Table2Row, ...] = (
    Table2Row("teacher", "teacher", "CohereLabs/command-a-translate-08-2025 (FP16)", 53.1, 26.0, 68.6),
    Table2Row(
        "teacher",
        "teacher_fp8",
        "CohereLabs/command-a-translate-08-2025 (FP8)",
        53.5,
        26.0,
        68.9,
        (0.3, 0.0, 0.3),
    ),
    Table2Row("translator", "translator_base", "LiquidAI/LFM2-1.2B (base)", 16.0, 19.3, 43.2),
    Table2Row(
        "translator", "translator", "HALA-LFM2-1.2B Translator (ours)", 48.2, 25.1, 64.2, (32.1, 5.9, 21.0)
    ),
)

# Section 2.3: the strict bilingual judge over ~1M OPUS-100 ar-en candidates.
JUDGE_ACCEPTED = 439_592
JUDGE_CANDIDATES = 1_000_000  # "~1M"
JUDGE_ACCEPTANCE_RATE = JUDGE_ACCEPTED / JUDGE_CANDIDATES
# Section 2.4: 405K x 2 (question and response) + 440K OPUS pairs.
TEACHER_ROWS = 405_000
BILINGUAL_EXAMPLES = 1_260_000  # "~1.26M"
# Section 2.5: the translated Arabic instruction corpus.
CORPUS_SAMPLES = 4_500_000  # "roughly 4.5M"
# Section 2.1: the FP8 teacher is "empirically ~2x faster than the non-quantized counterpart".
FP8_SPEEDUP = 2.0
# Section 3, "Compute and cost" (US dollars); translation ran on 12xA100, training on 8xH100-SXM.
TRAINING_COST_USD = 1_000  # 8xH100-SXM
TRANSLATION_COST_USD = 500  # 12xA100

# Table 1's size buckets by the HALA model sizes of our presets.
BUCKET_OF_SIZE = {"350m": "nano", "700m": "nano", "1.2b": "nano", "9b": "small", "tiny": "nano"}


def table1_bucket(bucket: str) -> list[Table1Row]:
    """The report's Table 1 rows of one size bucket, in the report's order."""
    return [row for row in TABLE1 if row.bucket == bucket]


def hala_rows() -> list[tuple[Table1Row, Table1Row]]:
    """Each published HALA row with its published base row."""
    by_model = {row.model: row for row in TABLE1}
    return [(row, by_model[row.base]) for row in TABLE1 if row.base is not None]
