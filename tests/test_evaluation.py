"""Evaluate stage: LightEval's own OALL v2 Arabic tasks on the fixture datasets, the tiny student on CPU."""

from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path
from statistics import fmean
from typing import Any

import pyarrow.parquet as pq
import pytest

from hala.errors import HalaError
from hala.evaluation import (
    BENCHMARK_KEYS,
    BENCHMARKS,
    EvalDataError,
    EvalSettings,
    VllmOptions,
    lighteval_configs,
    local_task_configs,
    prepare_lighteval_offline,
    run_evaluation,
)
from hala.evaluation.lighteval_runner import model_config
from hala.evaluation.local_data import read_layout
from hala.evaluation.offline import tiny_benchmarks_file

ROOT = Path(__file__).resolve().parents[1]
EVAL_FIXTURES = ROOT / "fixtures" / "eval"
# The Open Arabic LLM Leaderboard v2 task list (lighteval examples/tasks/OALL_v2_tasks.txt) without
# alrage_qa: tasks per benchmark.
OALL_V2_TASK_COUNTS = {
    "alghafa": 9,
    "arabic_mmlu": 40,
    "arabic_exams": 1,
    "madinah_qa": 2,
    "aratrust": 8,
    "arabic_mmlu_ht": 57,
}


class RecordingRow(dict[str, Any]):
    """A dataset row that records which columns a prompt function reads."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(row)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def scored_rows(key: str) -> dict[str, list[dict[str, Any]]]:
    """config -> rows of the split LightEval scores, read as LightEval reads them (datasets, offline)."""
    import datasets

    configs = {c.hf_subset: c for c in lighteval_configs(key)}
    rows = {}
    for name in read_layout(EVAL_FIXTURES / key):
        split = configs[name].evaluation_splits[0]
        rows[name] = list(datasets.load_dataset(str(EVAL_FIXTURES / key), name=name, split=split))
    return rows


def test_benchmarks_are_lightevals_oall_v2_tasks() -> None:
    for key in BENCHMARK_KEYS:
        configs = lighteval_configs(key)
        assert len(configs) == OALL_V2_TASK_COUNTS[key], key
        assert {c.name.split(":")[0] for c in configs} == {key}
        assert {c.hf_repo for c in configs} == {BENCHMARKS[key].hub_repo}
        for config in configs:
            (metric,) = config.metrics
            assert metric.metric_name.startswith("acc:logprob_normalization=LogProbCharNorm"), config.name
            assert config.prompt_function.__module__ == "lighteval.tasks.multilingual.tasks.arabic"
    assert "All" not in {c.hf_subset for c in lighteval_configs("arabic_mmlu")}


@pytest.mark.parametrize("key", BENCHMARK_KEYS)
def test_fixture_files_have_the_hub_column_schema(key: str) -> None:
    spec = BENCHMARKS[key]
    layout = read_layout(EVAL_FIXTURES / key)
    assert len(layout) >= 1
    for config in layout.values():
        for files in config.splits.values():
            for path in files:
                if spec.data_format == "csv":
                    assert path.suffix == ".csv"
                    with path.open(encoding="utf-8", newline="") as fh:
                        header = next(csv.reader(fh))
                    assert header == list(spec.columns), path
                    continue
                schema = pq.read_schema(path)
                assert set(schema.names) <= set(spec.columns), path
                assert set(spec.required) <= set(schema.names), path
                for name in schema.names:
                    arrow_type = str(schema.field(name).type).replace("element: ", "").replace("item: ", "")
                    assert arrow_type == spec.columns[name], (path, name)


@pytest.mark.parametrize("key", BENCHMARK_KEYS)
def test_lightevals_prompt_function_reads_the_fixture_columns(key: str) -> None:
    spec = BENCHMARKS[key]
    by_subset = {c.hf_subset: c for c in lighteval_configs(key)}
    for name, rows in scored_rows(key).items():
        assert 4 <= len(rows) <= 8, (key, name)
        for row in rows:
            recording = RecordingRow(row)
            doc = by_subset[name].prompt_function(recording, by_subset[name].name)
            # The spec's column lists are exactly what LightEval's prompt function touches.
            assert set(spec.required) <= recording.read <= spec.read_columns, (key, name, recording.read)
            assert 2 <= len(doc.choices) <= 5
            assert 0 <= doc.gold_index < len(doc.choices)
            assert doc.query.strip()


def test_local_configs_are_lightevals_with_only_the_data_location_replaced() -> None:
    for key in BENCHMARK_KEYS:
        hub = {c.hf_subset: c for c in lighteval_configs(key)}
        local = local_task_configs(key, EVAL_FIXTURES)
        assert [c.hf_subset for c in local] == list(read_layout(EVAL_FIXTURES / key))
        for config in local:
            original = hub[config.hf_subset]
            assert config.hf_repo == str((EVAL_FIXTURES / key).resolve())
            assert config.name == original.name
            assert config.prompt_function is original.prompt_function
            assert config.metrics == original.metrics
            assert config.evaluation_splits == original.evaluation_splits


def test_missing_parquet_column_names_benchmark_file_and_column(tmp_path: Path) -> None:
    shutil.copytree(EVAL_FIXTURES / "arabic_exams", tmp_path / "arabic_exams")
    test_file = tmp_path / "arabic_exams" / "data" / "test-00000-of-00001.parquet"
    table = pq.read_table(test_file)
    pq.write_table(table.drop_columns(["answer"]), test_file)
    with pytest.raises(EvalDataError) as err:
        local_task_configs("arabic_exams", tmp_path)
    message = str(err.value)
    assert message.startswith("arabic_exams: ")
    assert str(test_file.resolve()) in message
    assert "no column 'answer'" in message


def test_missing_csv_column_names_benchmark_file_and_column(tmp_path: Path) -> None:
    shutil.copytree(EVAL_FIXTURES / "madinah_qa", tmp_path / "madinah_qa")
    test_file = tmp_path / "madinah_qa" / "Arabic Language (Grammar)" / "test.csv"
    with test_file.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with test_file.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, [c for c in rows[0] if c != "Context"])
        writer.writeheader()
        writer.writerows([{k: v for k, v in r.items() if k != "Context"} for r in rows])
    with pytest.raises(EvalDataError, match=r"madinah_qa: .*Grammar\)/test\.csv has no column 'Context'"):
        local_task_configs("madinah_qa", tmp_path)


def test_unknown_subset_and_missing_folder_are_reported(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="aratrust: no folder"):
        local_task_configs("aratrust", tmp_path)
    shutil.copytree(EVAL_FIXTURES / "aratrust", tmp_path / "aratrust")
    card = tmp_path / "aratrust" / "README.md"
    card.write_text(
        card.read_text(encoding="utf-8").replace("config_name: Ethics", "config_name: Ethic"), "utf-8"
    )
    with pytest.raises(EvalDataError, match=r"declares configs \['Ethic'\] that are not AraTrust subsets"):
        local_task_configs("aratrust", tmp_path)


def test_unknown_benchmark_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(HalaError, match="unknown benchmark 'acva'"):
        run_evaluation(tmp_path, tmp_path / "out", ["acva"])


def lfm2_folder(tmp_path: Path) -> Path:
    """A stand-in model folder: only its config.json is read when building LightEval's model config."""
    folder = tmp_path / "lfm2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "lfm2"}), encoding="utf-8")
    return folder


def test_vllm_config_keeps_prefix_caching_off_for_lfm2(tmp_path: Path) -> None:
    student = lfm2_folder(tmp_path)
    config = model_config(
        EvalSettings(backend="vllm", vllm=VllmOptions(tensor_parallel_size=2)), student, tmp_path
    )
    assert config.enable_prefix_caching is False
    assert config.tensor_parallel_size == 2
    assert config.trust_remote_code is False
    asked = EvalSettings(backend="vllm", vllm=VllmOptions(enable_prefix_caching=True))
    assert model_config(asked, student, tmp_path).enable_prefix_caching is False
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    assert model_config(asked, tmp_path / "other", tmp_path).enable_prefix_caching is True


def test_offline_placeholders_are_in_place() -> None:
    prepare_lighteval_offline()
    assert tiny_benchmarks_file().is_file()
    assert prepare_lighteval_offline() == []  # idempotent: nothing left to write


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse internet connections and NLTK downloads: LightEval must not reach for the network."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network access during evaluation: {address}")
        connect(sock, address)

    def no_download(*args: Any, **kwargs: Any) -> bool:
        raise AssertionError(f"nltk.download{args} attempted during evaluation")

    import nltk

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(nltk, "download", no_download)


@pytest.mark.slow
@pytest.mark.usefixtures("no_network")
def test_tiny_student_scores_every_benchmark_on_cpu(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    student = tiny_models["student"]
    before = sorted(p.name for p in student.iterdir())
    out = tmp_path / "eval"
    report = run_evaluation(student, out, settings=EvalSettings(data_root=str(EVAL_FIXTURES), batch_size=8))

    assert list(report.scores) == [*BENCHMARK_KEYS, "average"]
    for key in BENCHMARK_KEYS:
        rows = scored_rows(key)
        assert report.samples[key] == sum(len(r) for r in rows.values()), key
        assert set(report.subsets[key]) == set(rows), key
        assert all(0.0 <= v <= 1.0 for v in report.subsets[key].values())
        assert report.scores[key] == pytest.approx(fmean(report.subsets[key].values()))
    assert report.scores["average"] == pytest.approx(fmean(report.scores[k] for k in BENCHMARK_KEYS))
    assert report.metric.startswith("acc:logprob_normalization=LogProbCharNorm")

    # The per-benchmark mean is LightEval's own "<benchmark>:_average" where it computes one.
    (results_file,) = report.results_files
    lighteval_results = json.loads(Path(results_file).read_text(encoding="utf-8"))["results"]
    for key in BENCHMARK_KEYS:
        averaged = lighteval_results.get(f"{key}:_average:0")
        if averaged is not None:
            assert averaged[report.metric] == pytest.approx(report.scores[key])
    assert json.loads((out / "scores.json").read_text(encoding="utf-8"))["scores"] == report.scores
    # LightEval's sample cache stays in the run folder, not in the model folder.
    assert sorted(p.name for p in student.iterdir()) == before
    assert (out / "lighteval-cache" / "model").is_dir()
    # LightEval turns autograd off process-wide; the caller gets its mode back (a later SFT trains).
    import torch

    assert torch.is_grad_enabled()


def test_transformers_config_passes_chat_template_and_batch_size(tmp_path: Path) -> None:
    settings = EvalSettings(batch_size=4, use_chat_template=False)
    config = model_config(settings, lfm2_folder(tmp_path), tmp_path)
    assert config.override_chat_template is False
    assert config.batch_size == 4
    assert config.model_name == "model"
