"""Run parameters and overrides: typed, dotted keys, compile-time keys refused, each task its own slice."""

from __future__ import annotations

import json
import re

import pytest

from hala.config import PresetError, load_preset
from hala.run_params import apply_overrides, parse_overrides, resolve, run_params
from hala.stages.settings import resolve_run, slice_preset, slices_to_json
from hala_pipelines.graph import plan_slices


def test_every_operator_setting_is_a_typed_described_parameter_with_the_presets_default() -> None:
    preset = load_preset("nano")
    params = {p.name: p for p in run_params(preset)}
    assert {"seed", "merge_t", "eval_mmlu_questions", "translator_learning_rate", "translator_epochs"} <= set(
        params
    )
    assert {f"data_{k}_limit" for k in preset.enabled_sources()} <= set(params)
    assert {"sft_1_2b_learning_rate", "sft_350m_epochs", "gate_max_task_drop"} <= set(params)
    assert all(p.description for p in params.values())
    assert params["sft_1_2b_learning_rate"].default(preset) == preset.students["1.2b"].training.learning_rate
    assert params["data_openorca_limit"].default(preset) == 405_000
    assert params["data_opus100_limit"].type is int and params["merge_t"].type is float


def test_a_null_setting_has_a_typed_stand_in() -> None:
    tiny = load_preset("tiny")
    params = {p.name: p for p in run_params(tiny)}
    assert tiny.data.sources["opus100"].limit is None and params["data_opus100_limit"].default(tiny) == 0
    assert tiny.eval.gates.min_translator_chrf is None
    assert params["gate_min_translator_chrf"].default(tiny) == -1.0
    resolved = resolve(tiny, {"data_opus100_limit": 0, "gate_min_translator_chrf": -1.0}, "")
    assert resolved.data.sources["opus100"].limit is None and resolved.eval.gates.min_translator_chrf is None
    assert resolve(tiny, {"gate_min_translator_chrf": 20.0}, "").eval.gates.min_translator_chrf == 20.0


@pytest.mark.parametrize(
    "text",
    [
        "merge.t: 0.3\neval.contamination_n: 10",
        '{"merge.t": 0.3, "eval.contamination_n": 10}',
        "merge.t=0.3\neval.contamination_n=10",
    ],
)
def test_overrides_are_yaml_json_or_key_value_lines(text: str) -> None:
    assert parse_overrides(text) == {"merge.t": 0.3, "eval.contamination_n": 10}


def test_a_key_may_hold_dots_as_a_student_size_does() -> None:
    nano = apply_overrides(
        load_preset("nano"), {"students.1.2b.training.warmup_ratio": 0.05}, compile_time=False
    )
    assert nano.students["1.2b"].training.warmup_ratio == 0.05


def test_bad_overrides_are_refused_naming_the_key() -> None:
    tiny = load_preset("tiny")
    with pytest.raises(PresetError, match=r"'merge\.tt'.*no field 'tt'"):
        resolve(tiny, {}, "merge.tt: 1")
    with pytest.raises(PresetError, match=r"merge\.t"):
        resolve(tiny, {}, "merge.t: 2.0")  # outside [0, 1]
    with pytest.raises(PresetError, match="run parameter 'nope' is unknown"):
        resolve(tiny, {"nope": 1}, "")
    with pytest.raises(PresetError, match="not KEY=VALUE"):
        parse_overrides("merge.t=0.3\njust words")


@pytest.mark.parametrize(
    "override",
    [
        "data.num_shards: 8",
        "corpus.sources: [openorca]",
        "students.tiny.training.gpus: 1",
        "teacher.engine.tensor_parallel_size: 2",
        "cluster.retries: 5",
        "tracking.experiment: other",
    ],
)
def test_a_setting_that_fixes_the_graph_fails_the_run_and_says_to_recompile(override: str) -> None:
    key = re.escape(override.split(":")[0])
    with pytest.raises(PresetError, match=rf"overrides change \['{key}'\].*recompile"):
        resolve(load_preset("tiny"), {}, override)
    apply_overrides(load_preset("tiny"), parse_overrides(override), compile_time=True)  # --set may


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_a_setting_reaches_only_the_tasks_that_read_it() -> None:
    """What caching rests on: a changed setting changes the slices of its stages and no other."""
    nano = load_preset("nano")
    slices = plan_slices(nano)
    base = slice_preset(nano, slices)

    def after(params: dict[str, object], overrides: str = "") -> set[str]:
        return _changed(base, slice_preset(resolve(nano, params, overrides), slices))

    assert after({"gate_max_task_drop": 1.0}) == {
        "translation_report",
        *(f"benchmark_report_{s.replace('.', '_')}" for s in nano.students),
    }
    assert after({"sft_350m_learning_rate": 1e-5}) == {"sft_350m"}
    assert after({"merge_t": 0.4}) == {f"merge_{s.replace('.', '_')}" for s in nano.students}
    assert after({"eval_mmlu_questions": 100}) == {
        f"translation_eval_{s}" for s in ("translator_base", "translator", "teacher", "teacher_fp8")
    }
    assert after({"data_lamini_limit": 10}) == {"prepare_lamini"}
    assert after({}, "translator.training.warmup_ratio: 0.2") == {"sft_translator"}
    assert after({}, "judge.min_label_mass: 0.3") == {"judge_filter"}
    assert after({}, "eval.contamination_n: 10") == {"contamination"}
    assert after({}, "") == set()


def test_the_settings_task_resolves_a_run_and_slices_it() -> None:
    tiny = load_preset("tiny")
    slices = plan_slices(tiny)
    preset, settings = resolve_run(tiny.to_json(), slices_to_json(slices), {"merge_t": 0.25}, "seed: 7")
    assert preset.merge.t == 0.25 and preset.seed == 7
    assert set(settings) == {s.name for s in slices}
    assert json.loads(settings["merge_tiny"]) == {"role": "tiny", "merge": {"method": "slerp", "t": 0.25}}
    assert json.loads(settings["fetch_teacher"])["seed"] == 7
