from __future__ import annotations

import re
from pathlib import Path

import pytest

from hala.config import PRESET_NAMES, PresetError, load_preset


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_loads(name: str) -> None:
    preset = load_preset(name)
    assert preset.name == name
    assert preset.merge.t == 0.5


def test_paper_preset_carries_the_report_numbers() -> None:
    paper = load_preset("paper")
    assert paper.data.sources["openorca"].limit == 405_000
    assert paper.data.sources["opus100"].limit == 1_000_000
    assert paper.teacher.prompt == "Translate from English to Arabic: {x}"
    assert paper.teacher.model.id == "CohereLabs/command-a-translate-08-2025"
    assert paper.judge.model.id == "Qwen/Qwen2.5-3B-Instruct"
    assert paper.translator.base.id == "LiquidAI/LFM2-1.2B"
    assert {k: s.base.id for k, s in paper.students.items()} == {
        "350m": "LiquidAI/LFM2-350M",
        "700m": "LiquidAI/LFM2-700M",
        "1.2b": "LiquidAI/LFM2-1.2B",
        "9b": "QCRI/Fanar-1-9B-Instruct",
    }
    assert len(paper.corpus.sources) == 7
    assert paper.eval.mmlu_questions == 500


def test_cluster_presets_split_the_sizes() -> None:
    assert set(load_preset("nano").students) == {"350m", "700m", "1.2b"}
    assert set(load_preset("small").students) == {"9b"}
    tiny = load_preset("tiny")
    assert tiny.data.root is not None and Path(tiny.data.root).is_dir()
    assert tiny.students["tiny"].registered_name == "hala-tiny"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(f"extends: {load_preset_path('paper')}\n{text}")
    return path


def load_preset_path(name: str) -> Path:
    from hala.config import resolve_preset_path

    return resolve_preset_path(name)


def test_unknown_field_names_file_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "merge: {t: 0.5, tt: 1}\n")
    with pytest.raises(PresetError) as err:
        load_preset(path)
    message = str(err.value)
    assert str(path) in message and "merge.tt" in message and "remove it or fix its spelling" in message


def test_out_of_range_value_says_what_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"field 'merge\.t'.*less than or equal to 1"):
        load_preset(_write(tmp_path, "merge: {t: 1.5}\n"))


def test_missing_field_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bare.yaml"
    path.write_text("name: bare\n")
    with pytest.raises(PresetError, match=r"field 'seed': Field required.*add it"):
        load_preset(path)


def test_unknown_source_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"unknown source\(s\) \['wikipedia'\]; allowed: \[.*'openorca'"):
        load_preset(_write(tmp_path, "data: {sources: {wikipedia: {}}}\n"))


def test_prompt_without_slot_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(
        PresetError, match=r"teacher\.prompt.*exactly the placeholders \['x'\]: missing \['x'\]"
    ):
        load_preset(_write(tmp_path, "teacher: {prompt: 'Translate this'}\n"))


@pytest.mark.parametrize(
    ("override", "field", "problem"),
    [
        ("translator: {prompt_en_ar: 'Translate to Arabic'}", "translator.prompt_en_ar", r"missing \['x'\]"),
        (
            "translator: {prompt_en_ar: 'Translate {x} into {lang}'}",
            "translator.prompt_en_ar",
            r"unknown \['lang'\]",
        ),
        ("judge: {prompt: 'Judge {en}'}", "judge.prompt", r"missing \['ar'\]"),
        ("teacher: {prompt: 'Translate {x} {'}", "teacher.prompt", r"Single '\{' encountered"),
    ],
)
def test_every_prompt_has_exactly_the_placeholders_its_stage_fills(
    tmp_path: Path, override: str, field: str, problem: str
) -> None:
    with pytest.raises(PresetError, match=rf"field '{re.escape(field)}'.*{problem}"):
        load_preset(_write(tmp_path, override + "\n"))
    load_preset(_write(tmp_path, "teacher: {prompt: 'Translate {x} (keep {{braces}})'}\n"))  # escaped: fine


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"key 'seed' appears twice in one mapping \(lines 2 and 3\)"):
        load_preset(_write(tmp_path, "seed: 1\nseed: 2\n"))


def test_missing_preset_and_cycle(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="no such preset file"):
        load_preset("does-not-exist")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(PresetError, match="cycle"):
        load_preset(a)


def test_fingerprint_is_stable_and_sensitive() -> None:
    assert load_preset("tiny").fingerprint() == load_preset("tiny").fingerprint()
    assert load_preset("tiny").fingerprint() != load_preset("nano").fingerprint()


def test_relative_folders_resolve_against_the_file_that_names_them(tmp_path: Path) -> None:
    from conftest import ROOT

    child = tmp_path / "elsewhere" / "child.yaml"
    child.parent.mkdir()
    child.write_text(
        f"extends: {ROOT / 'src' / 'hala' / 'presets' / 'tiny.yaml'}\nname: child\ndata: {{root: data}}\n"
    )
    preset = load_preset(child)
    assert preset.data.root == str(tmp_path / "elsewhere" / "data")  # named by the child
    assert preset.eval.data_root == str(ROOT / "fixtures" / "eval")  # named by tiny.yaml


def test_a_batch_the_gpus_cannot_share_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"students\.1\.2b\.training.*is not a multiple of .* x 8 rank"):
        load_preset(_write(tmp_path, "students: {1.2b: {training: {effective_batch_size: 100}}}\n"))


def test_an_unknown_benchmark_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"field 'eval\.benchmarks'.*acva"):
        load_preset(_write(tmp_path, "eval: {benchmarks: [alghafa, acva]}\n"))


@pytest.mark.parametrize(
    ("override", "field", "problem"),
    [
        (
            "{teacher: 'Translate everything that follows into Arabic:'}",
            "eval.translation_prompts",
            r"'teacher' must contain \{text\}",
        ),
        (
            "{teacher: 'Translate {text} and {text}'}",
            "eval.translation_prompts",
            r"'teacher' must contain \{text\} exactly once",
        ),
        ("{gpt4: 'Translate {text}'}", "eval.translation_prompts", r"unknown \['gpt4'\]"),
        ("{teacher_fp8: null}", "eval.translation_prompts.teacher_fp8", "Input should be a valid string"),
    ],
)
def test_a_translation_prompt_without_text_fails_at_load(
    tmp_path: Path, override: str, field: str, problem: str
) -> None:
    """Table 2 would translate an empty source: the preset fails when loaded, naming the field."""
    path = _write(tmp_path, f"eval: {{translation_prompts: {override}}}\n")
    with pytest.raises(PresetError, match=rf"field '{re.escape(field)}'.*{problem}") as err:
        load_preset(path)
    assert str(path) in str(err.value)


def test_a_translation_system_left_out_fails_at_load(tmp_path: Path) -> None:
    """A preset whose Table 2 prompts lack a system (here teacher_fp8) names the field and the system."""
    paper = load_preset_path("paper").read_text(encoding="utf-8")
    line = "    teacher_fp8: *plain_prompt\n"
    assert paper.count(line) == 1
    path = tmp_path / "no-fp8.yaml"
    path.write_text(paper.replace(line, ""), encoding="utf-8")
    with pytest.raises(
        PresetError, match=r"field 'eval\.translation_prompts'.*missing \['teacher_fp8'\]"
    ) as err:
        load_preset(path)
    assert str(path) in str(err.value)
