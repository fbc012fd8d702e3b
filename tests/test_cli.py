from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES
from hala_pipelines.cli import main

SUBCOMMANDS = [
    ["compile"],
    ["run"],
    ["data"],
    ["data", "check"],
    ["tiny-models"],
    ["submit"],
    ["schedule"],
    ["runs"],
    ["promote"],
    ["models"],
    ["rerun"],
    ["metrics"],
]


@pytest.mark.parametrize("words", [[], *SUBCOMMANDS])
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    assert "usage: hala" in capsys.readouterr().out


def test_python_dash_m_hala_pipelines_is_the_hala_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hala_pipelines", "--help"], capture_output=True, text=True, check=True
    )
    assert "tiny-models" in out.stdout


def test_data_check_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "NousResearch/Hermes-3-Dataset", str(FIXTURES / "hermes3")]) == 0
    report = json.loads(capsys.readouterr().out)
    examples = report.pop("examples")
    assert report == {
        "source": "NousResearch/Hermes-3-Dataset",
        "read": 30,
        "kept": 20,
        "quarantined": {"code_related": 10},
    }
    # A few example rows per reason: the fixture's labelled code rows 1, 4 and 7 come first.
    assert [(e["row"], e["column"]) for e in examples["code_related"]] == [
        (1, "conversations"),
        (4, "conversations"),
        (7, "conversations"),
    ]
    assert all(e["id"] for e in examples["code_related"])


@pytest.mark.parametrize(("option", "value"), [("--shards", "0"), ("--limit", "-1"), ("--shards", "two")])
def test_data_check_validates_its_options(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["data", "check", "openorca", str(FIXTURES / "openorca"), option, value])
    assert stopped.value.code == 2 and f"argument {option}" in capsys.readouterr().err


def test_data_check_replaces_the_shards_of_an_earlier_run(tmp_path: Path) -> None:
    assert (
        main(
            ["data", "check", "openorca", str(FIXTURES / "openorca"), "--shards", "3", "--out", str(tmp_path)]
        )
        == 0
    )
    assert (
        main(
            ["data", "check", "openorca", str(FIXTURES / "openorca"), "--shards", "2", "--out", str(tmp_path)]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "shard-00000-of-00002.parquet",
        "shard-00001-of-00002.parquet",
    ]


def test_data_check_keeps_outputs_when_asked(tmp_path: Path) -> None:
    assert (
        main(
            ["data", "check", "openorca", str(FIXTURES / "openorca"), "--shards", "3", "--out", str(tmp_path)]
        )
        == 0
    )
    assert len(list((tmp_path / "shards").glob("*.parquet"))) == 3
    assert json.loads((tmp_path / "counts.json").read_text())["quarantined"] == {"empty_text": 1}


def test_data_check_fails_with_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train.jsonl").write_text('{"prompt": "p", "chosen": "c"}\n')
    assert main(["data", "check", "Dahoas/synthetic-instruct-gptj-pairwise", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        "error: gptj_pairwise (Dahoas/synthetic-instruct-gptj-pairwise): missing column(s) ['rejected']"
        in err
    )


def test_data_check_stops_on_a_source_losing_more_than_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = {"id": "x", "system_prompt": "", "question": "What is 2 + 2?", "response": "4"}
    rows = [{**row, "id": f"x.{i}", "response": "" if i < 3 else "4"} for i in range(10)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "check", "openorca", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["quarantined"] == {"empty_text": 3}  # the counts still print
    assert "3 of 10 rows quarantined (30.0%), more than the allowed 5.0%" in err
    assert (
        "top reasons: empty_text 3" in err and "example ids: openorca:x.0, openorca:x.1, openorca:x.2" in err
    )
    assert main(["data", "check", "openorca", str(tmp_path), "--max-quarantine-fraction", "0.3"]) == 0


def test_data_check_unknown_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "someone/else", "."]) == 2
    assert "known sources" in capsys.readouterr().err


@pytest.mark.component
def test_compile_writes_yaml(tmp_path: Path) -> None:
    assert main(["compile", "--preset", "nano", "--output", str(tmp_path / "nano.yaml")]) == 0
    assert "hala-nano" in (tmp_path / "nano.yaml").read_text()


@pytest.mark.component
def test_tiny_models_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tiny-models", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "teacher" / "model.safetensors").exists()
    assert "translator-base" in capsys.readouterr().out


def test_an_unwritable_output_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["compile", "--preset", "nano", "--output", str(blocker / "nano.yaml")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(blocker) in err and "Traceback" not in err
