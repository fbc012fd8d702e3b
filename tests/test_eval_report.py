"""Report tables, chart, gate verdicts on model versions, and the benchmark texts of the overlap check."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT
from hala import registry, tracking
from hala.config import load_preset
from hala.errors import HalaError
from hala.evaluation.report import (
    bar_chart,
    benchmark_table,
    count_parameters,
    format_params,
    translation_table,
    write_outputs,
)
from hala.stages import benchmark_report, contamination, translation_report

BENCH = ["alghafa", "arabic_mmlu"]


def _scores(base: float, finetuned: float, merged: float) -> dict[str, dict[str, float]]:
    return {
        "base": {"alghafa": base, "arabic_mmlu": base, "average": base},
        "finetuned": {"alghafa": finetuned, "arabic_mmlu": finetuned, "average": finetuned},
        "merged": {"alghafa": merged, "arabic_mmlu": merged + 1, "average": merged + 0.5},
    }


LFM2_1_2B = 1_170_340_608  # LiquidAI/LFM2-1.2B's parameter count; fine-tuning and merging keep it


def test_benchmark_table_is_table1_shaped_with_the_reports_bucket_beside_it(tmp_path: Path) -> None:
    params = dict.fromkeys(("base", "finetuned", "merged"), LFM2_1_2B)
    table = benchmark_table(
        _scores(40.0, 45.0, 47.0), BENCH, "1.2b", "LiquidAI/LFM2-1.2B", "hala-1.2b", params=params
    )
    assert table.header == ["Size", "Model", "Params", "AlGhafa", "ArabicMMLU", "Average"]
    ours = table.rows[:3]
    assert [row[1] for row in ours] == [
        "LiquidAI/LFM2-1.2B",
        "hala-1.2b (fine-tune, before merge)",
        "hala-1.2b",
    ]
    assert ours[0] == ["nano", "LiquidAI/LFM2-1.2B", "1.2B", "40.0", "40.0", "40.0"]
    assert ours[2] == ["nano", "hala-1.2b", "1.2B", "47.0", "48.0", "47.5 (+7.5)"]
    # The report's nano bucket follows, every row of it, marked as the report's.
    report = table.rows[3:]
    assert len(report) == 14 and {row[0] for row in report} == {"nano (report)"}
    hala = next(row for row in report if row[1] == "HALA-1.2B")
    assert hala[3:] == ["59.2", "48.6", "51.4 (+5.1)"]
    paths = write_outputs(table, tmp_path, "Table 1")
    assert "| nano | hala-1.2b | 1.2B | 47.0 | 48.0 | 47.5 (+7.5) |" in paths["markdown"].read_text()
    rows = list(csv.reader(paths["csv"].open()))
    assert rows[0] == table.header and len(rows) == 1 + 3 + 14
    chart = bar_chart(_scores(40.0, 45.0, 47.0), BENCH, tmp_path / "chart.png", "Table 1")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_params_is_a_parameter_count_counted_from_the_weights_never_the_size_key(
    tiny_models: dict[str, Path],
) -> None:
    """The Params cell counts the model's weights (as num_parameters() does); unknown is '-', not 'tiny'."""
    from transformers import AutoModelForCausalLM

    count = count_parameters(tiny_models["student"])
    assert count == AutoModelForCausalLM.from_pretrained(tiny_models["student"]).num_parameters()
    table = benchmark_table(
        _scores(40.0, 45.0, 47.0), BENCH, "tiny", "tiny:student", "hala-tiny", params={"merged": count}
    )
    assert [row[2] for row in table.rows[:3]] == ["-", "-", format_params(count)]
    assert format_params(count) != "tiny" and format_params(count)[-1] in "KMB"
    assert [format_params(n) for n in (354_483_968, LFM2_1_2B, 8_700_000_000, 96_000)] == [
        "354M",
        "1.2B",
        "8.7B",
        "96K",
    ]
    with pytest.raises(HalaError, match=r"no \*\.safetensors weights"):
        count_parameters(tiny_models["student"].parent)


def test_translation_table_is_table2_shaped_with_blocks_deltas_and_the_reports_rows() -> None:
    def result(bleu: float, chrf: float) -> dict[str, float]:
        return {"n": 16, "bleu": bleu, "chrf": chrf, "rouge_l": 2.0, "rouge_l_arabic": 25.0}

    table = translation_table(
        {
            "translator_base": result(10.0, 30.0),
            "translator": result(12.5, 40.0),
            "teacher": result(50.0, 60.0),
            "teacher_fp8": result(49.0, 60.5),
        }
    )
    assert table.header == ["block", "system", "n", "BLEU", "ROUGE-L", "chrF++", "ROUGE-L (Arabic-aware)"]
    rows = [row[:6] for row in table.rows]
    assert rows[0][0] == "Teacher translator"
    assert rows[1] == ["", "teacher", 16, "50.0", "2.0", "60.0"]
    assert rows[2] == ["", "teacher_fp8", 16, "49.0 (-1.0)", "2.0 (+0.0)", "60.5 (+0.5)"]
    fp8_report = ["(report)", "CohereLabs/command-a-translate-08-2025 (FP8)", 500, "53.5 (+0.3)"]
    assert rows[4] == [*fp8_report, "26.0 (+0.0)", "68.9 (+0.3)"]
    assert rows[5][0].startswith("Lightweight translator")
    assert rows[7] == ["", "translator", 16, "12.5 (+2.5)", "2.0 (+0.0)", "40.0 (+10.0)"]
    assert rows[9][1] == "HALA-LFM2-1.2B Translator (ours)" and rows[9][5] == "64.2 (+21.0)"


@pytest.fixture
def tracked(tmp_path: Path, pipeline_run: str) -> dict[str, str]:
    """A pipeline run's parent, and version 1 of each registered model, as register folders."""
    client = MlflowClient(tracking.tracking_uri(), registry_uri=tracking.tracking_uri())
    folders = {}
    for name in ("hala-tiny", "hala-translator-tiny"):
        client.create_registered_model(name)
        client.create_model_version(name, source=str(tmp_path), run_id=pipeline_run)
        folder = tmp_path / f"registered-{name}"
        folder.mkdir()
        (folder / "registered.json").write_text(json.dumps({"name": name, "version": "1"}))
        folders[name] = str(folder)
    return folders


def _score_dirs(tmp_path: Path, scores: dict[str, dict[str, float]]) -> dict[str, str]:
    dirs = {}
    for variant, row in scores.items():
        folder = tmp_path / variant
        folder.mkdir(parents=True)
        (folder / "scores.json").write_text(json.dumps({"scores": {k: v / 100 for k, v in row.items()}}))
        dirs[variant] = str(folder)
    return dirs


def _contamination(tmp_path: Path, fraction: float) -> str:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "contamination.json").write_text(json.dumps({"alghafa": {"fraction": fraction}}))
    return str(tmp_path / "c")


def test_report_records_the_gate_verdict_on_the_model_version(
    tmp_path: Path, tracked: dict[str, str]
) -> None:
    settings = benchmark_report.settings(load_preset("tiny"), role="tiny").model_copy(
        update={"benchmarks": BENCH}
    )
    passing = benchmark_report.run(
        settings,
        _score_dirs(tmp_path / "a", _scores(40, 45, 47)),
        _contamination(tmp_path / "a", 0.0),
        tracked["hala-tiny"],
        str(tmp_path / "out-a"),
    )
    client = MlflowClient(tracking.tracking_uri(), registry_uri=tracking.tracking_uri())
    version = client.get_model_version("hala-tiny", "1")
    assert passing.verdict == "pass" and version.tags[registry.TAG_GATE_VERDICT] == "pass"
    assert version.tags["eval.average"] == "47.50"
    assert "Gate verdict on hala-tiny version 1: pass" in passing.markdown

    failing = benchmark_report.run(
        settings,
        _score_dirs(tmp_path / "b", _scores(40, 45, 35)),
        _contamination(tmp_path / "b", 0.5),
        tracked["hala-tiny"],
        str(tmp_path / "out-b"),
    )
    reasons = json.loads(client.get_model_version("hala-tiny", "1").tags[registry.TAG_GATE_REASONS])
    assert failing.verdict == "fail" and reasons == failing.reasons
    assert any("alghafa" in r and "35.00" in r for r in reasons)  # the task drop, both values named
    assert any("contamination alghafa" in r for r in reasons)


def test_translation_report_gates_the_translator_on_chrf(tmp_path: Path, tracked: dict[str, str]) -> None:
    settings = translation_report.settings(load_preset("tiny"))
    settings = settings.model_copy(
        update={"gates": settings.gates.model_copy(update={"min_translator_chrf": 30.0})}
    )
    dirs = {}
    for system, chrf in (
        ("translator_base", 10.0),
        ("translator", 25.0),
        ("teacher", 60.0),
        ("teacher_fp8", 59.5),
    ):
        folder = tmp_path / system
        folder.mkdir()
        result = {"n": 16, "bleu": 1.0, "chrf": chrf, "rouge_l": 0.0, "rouge_l_arabic": 5.0}
        (folder / "result.json").write_text(json.dumps(result))
        dirs[system] = str(folder)
    fp8 = tmp_path / "fp8"
    fp8.mkdir()
    figures = {"chrf_source": 61.0, "chrf_fp8": 60.5, "chrf_delta": -0.5, "size_source_bytes": 2**21}
    (fp8 / "validation.json").write_text(json.dumps({f"quant.{k}": v for k, v in figures.items()}))
    with pytest.raises(HalaError, match=r"validation.json: not the FP8 check's figures .*size_fp8_bytes"):
        translation_report.run(settings, dirs, tracked["hala-translator-tiny"], str(fp8), str(tmp_path / "x"))
    figures["size_fp8_bytes"] = 2**20
    (fp8 / "validation.json").write_text(json.dumps({f"quant.{k}": v for k, v in figures.items()}))
    done = translation_report.run(
        settings, dirs, tracked["hala-translator-tiny"], str(fp8), str(tmp_path / "out")
    )
    assert done.verdict == "fail" and "25.00 < minimum 30.00" in done.reasons[0]
    assert "chrF++ 61.00 (source) vs 60.50 (FP8), delta -0.50; weights 2.0 MiB -> 1.0 MiB" in done.markdown
    uri = tracking.tracking_uri()
    version = MlflowClient(uri, registry_uri=uri).get_model_version("hala-translator-tiny", "1")
    assert version.tags[registry.TAG_GATE_VERDICT] == "fail" and version.tags["translation.chrf"] == "25.00"
    ours = [row[1] for row in done.table.rows if row[0] == ""]
    assert ours == ["teacher", "teacher_fp8", "translator_base", "translator"]


def test_benchmark_texts_read_every_fixture_item() -> None:
    texts = contamination.benchmark_texts(["arabic_exams", "aratrust"], str(ROOT / "fixtures" / "eval"))
    assert set(texts) == {"arabic_exams", "aratrust"}
    assert all(len(items) > 0 and all(t.strip() for t in items) for items in texts.values())
    assert any(any("\u0600" <= ch <= "\u06ff" for ch in t) for t in texts["aratrust"])
