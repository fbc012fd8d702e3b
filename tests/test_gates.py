"""Promotion gates: each check on its boundary, strict config, and the verdict tags in a sqlite registry."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from hala.evaluation.gates import GateConfig, GateInputError, GateVerdict, evaluate_gates, record_verdict
from hala.registry import GATE_FAIL, GATE_PASS, TAG_GATE_REASONS, TAG_GATE_VERDICT

BASE = {"alghafa": 50.0, "arabic_mmlu": 40.0, "exams": 30.0, "average": 40.0}


def _scores(**merged: float) -> dict[str, dict[str, float]]:
    tasks = {**{k: v for k, v in BASE.items() if k != "average"}, **merged}
    average = merged.get("average", sum(v for k, v in tasks.items() if k != "average") / 3)
    return {"merged": {**tasks, "average": average}, "base": dict(BASE)}


def test_defaults_are_documented_and_an_equal_model_passes() -> None:
    cfg = GateConfig()
    assert (cfg.min_average_gain_over_base, cfg.max_task_drop) == (0.0, 2.0)
    assert (cfg.min_translator_chrf, cfg.max_contamination) == (30.0, 0.01)
    assert all(f.description for f in GateConfig.model_fields.values())
    verdict = evaluate_gates(cfg, _scores(), translator_chrf=30.0, contamination={"mmlu": 0.01})
    assert verdict == GateVerdict(
        passed=True,
        reasons=[],
        checks=["average_gain_over_base", "max_task_drop", "translator_chrf", "contamination"],
        skipped=[],
    )
    assert verdict.verdict == GATE_PASS


@pytest.mark.parametrize(("gain", "passed"), [(1.5, True), (1.49, False), (3.0, True)])
def test_average_gain_boundary(gain: float, passed: bool) -> None:
    cfg = GateConfig(min_average_gain_over_base=1.5, max_task_drop=100.0)
    verdict = evaluate_gates(cfg, _scores(average=40.0 + gain))
    assert verdict.passed is passed
    if not passed:
        assert verdict.reasons == [
            f"average: merged {40.0 + gain:.2f} vs base 40.00, gain {gain:+.2f} points < required +1.50"
        ]


def test_average_gain_tolerates_float_rounding() -> None:
    cfg = GateConfig(min_average_gain_over_base=0.3)
    scores = {"merged": {"t": 0.1 + 0.2 + 0.3}, "base": {"t": 0.3}}  # gain 0.30000000000000004 - 0.0...
    assert evaluate_gates(cfg, scores).passed
    scores = {"merged": {"t": 0.1 + 0.2}, "base": {"t": 0.0}}  # 0.30000000000000004 vs 0.3
    assert evaluate_gates(GateConfig(min_average_gain_over_base=0.3), scores).passed


def test_average_is_the_task_mean_when_not_given() -> None:
    scores = {"merged": {"a": 60.0, "b": 40.0}, "base": {"a": 59.0, "b": 40.0}}
    assert evaluate_gates(GateConfig(min_average_gain_over_base=0.5), scores).passed
    assert not evaluate_gates(GateConfig(min_average_gain_over_base=0.51), scores).passed


@pytest.mark.parametrize(("drop", "passed"), [(0.0, True), (2.0, True), (2.01, False)])
def test_task_drop_boundary(drop: float, passed: bool) -> None:
    verdict = evaluate_gates(GateConfig(min_average_gain_over_base=-10.0), _scores(exams=30.0 - drop))
    assert verdict.passed is passed
    if not passed:
        assert verdict.reasons == [
            f"task exams: merged {30.0 - drop:.2f} vs base 30.00, drop {drop:.2f} points > allowed 2.00"
        ]


def test_every_failing_task_is_named_and_a_missing_task_fails() -> None:
    scores = _scores(alghafa=45.0, exams=20.0, average=45.0)
    del scores["merged"]["arabic_mmlu"]
    reasons = evaluate_gates(GateConfig(), scores).reasons
    assert reasons == [
        "task alghafa: merged 45.00 vs base 50.00, drop 5.00 points > allowed 2.00",
        "task arabic_mmlu: missing from the merged model's scores (base 40.00)",
        "task exams: merged 20.00 vs base 30.00, drop 10.00 points > allowed 2.00",
    ]


@pytest.mark.parametrize(("chrf", "passed"), [(30.0, True), (29.99, False), (math.nan, False)])
def test_translator_chrf_boundary(chrf: float, passed: bool) -> None:
    verdict = evaluate_gates(GateConfig(), _scores(), translator_chrf=chrf)
    assert verdict.passed is passed and "translator_chrf" in verdict.checks
    if chrf == 29.99:
        assert verdict.reasons == ["translator chrF++: 29.99 < minimum 30.00"]


@pytest.mark.parametrize(("fraction", "passed"), [(0.0, True), (0.01, True), (0.0101, False)])
def test_contamination_boundary(fraction: float, passed: bool) -> None:
    verdict = evaluate_gates(GateConfig(), _scores(), contamination={"mmlu_ht": fraction, "alghafa": 0.0})
    assert verdict.passed is passed
    if not passed:
        assert verdict.reasons == ["contamination mmlu_ht: 0.0101 of items > maximum 0.0100"]


def test_checks_without_input_or_threshold_are_listed_as_skipped() -> None:
    verdict = evaluate_gates(GateConfig(), _scores())
    assert verdict.checks == ["average_gain_over_base", "max_task_drop"]
    assert verdict.skipped == [
        "translator_chrf: no translator chrF++ given",
        "contamination: no contamination report given",
    ]
    off = GateConfig(min_translator_chrf=None, max_contamination=None)
    verdict = evaluate_gates(off, _scores(), translator_chrf=1.0, contamination={"mmlu": 1.0})
    assert verdict.passed and len(verdict.skipped) == 2 and "turned off" in verdict.skipped[0]


def test_all_failures_are_reported_together() -> None:
    verdict = evaluate_gates(
        GateConfig(), _scores(exams=20.0), translator_chrf=10.0, contamination={"mmlu": 0.5}
    )
    assert not verdict.passed and verdict.verdict == GATE_FAIL
    assert [r.split(":")[0] for r in verdict.reasons] == [
        "average",
        "task exams",
        "translator chrF++",
        "contamination mmlu",
    ]


def test_config_is_strict() -> None:
    assert GateConfig.model_validate({"max_task_drop": 1}).max_task_drop == 1.0
    for bad in (
        {"max_task_dorp": 1.0},
        {"max_task_drop": "1.0"},
        {"max_task_drop": -1.0},
        {"max_contamination": 1.5},
        {"min_translator_chrf": math.inf},
    ):
        with pytest.raises(ValidationError):
            GateConfig.model_validate(bad)
    with pytest.raises(GateInputError, match="'base'"):
        evaluate_gates(GateConfig(), {"merged": {"average": 1.0}})


def test_verdict_is_recorded_on_the_model_version(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("hala-test")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    first = client.create_model_version("hala-test", source=str(model_dir)).version
    second = client.create_model_version("hala-test", source=str(model_dir)).version

    failed = evaluate_gates(GateConfig(), _scores(exams=20.0), translator_chrf=10.0)
    record_verdict(uri, "hala-test", first, failed)  # by URI
    record_verdict(client, "hala-test", int(second), evaluate_gates(GateConfig(), _scores()))  # by client

    tags = client.get_model_version("hala-test", first).tags
    assert tags[TAG_GATE_VERDICT] == GATE_FAIL
    assert json.loads(tags[TAG_GATE_REASONS]) == failed.reasons and len(failed.reasons) == 3
    tags = client.get_model_version("hala-test", second).tags
    assert tags[TAG_GATE_VERDICT] == GATE_PASS and json.loads(tags[TAG_GATE_REASONS]) == []
