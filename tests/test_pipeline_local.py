"""The whole pipeline through KFP's local runner, tracked in a sqlite MLflow store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from conftest import FIXTURES, ROOT
from hala.config import load_preset
from hala.sources import SOURCES
from hala_pipelines.local import run_local, source_counts

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the embedded default writes mlflow.db to the working folder
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PATH", __import__("os").environ["PATH"])  # restored after run_local prepends
    return tmp_path


def _runs(tmp_path: Path, experiment: str) -> list[mlflow.entities.Run]:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def test_tiny_pipeline_prepares_every_source_and_tracks_it(workdir: Path) -> None:
    result = run_local("tiny", workdir / "runs", run_name="ci-tiny")
    assert result.tracking_uri == f"sqlite:///{workdir / 'mlflow.db'}"
    counts = {c["source"]: c for c in source_counts(result.pipeline_root)}
    assert list(counts) == list(SOURCES)
    assert counts["openorca"]["quarantined"] == {"empty_text": 1}
    assert counts["hermes3"]["quarantined"] == {"code_related": 10}
    for c in counts.values():
        assert c["read"] == c["kept"] + sum(c["quarantined"].values())

    runs = _runs(workdir, "hala-tiny")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "ci-tiny" and parent.info.status == "FINISHED"
    assert parent.data.params["preset"] == "tiny"
    assert len(parent.data.tags["hala.git_commit"]) == 40 or parent.data.tags["hala.git_commit"] == "unknown"
    assert parent.data.tags["hala.version.kfp"]
    assert parent.data.metrics["openorca.kept"] == counts["openorca"]["kept"]

    stages = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    shards = range(load_preset("tiny").data.num_shards)
    corpus = load_preset("tiny").corpus.sources
    assert set(stages) == {
        *(f"prepare-{k}" for k in SOURCES),
        "quantize",
        "bilingual_set",
        *(f"teacher_translate-{s}" for s in shards),
        *(f"judge_filter-{s}" for s in shards),
        *(f"corpus_translate-{k}-{s}" for k in corpus for s in shards),
    }
    assert all(r.info.status == "FINISHED" for r in stages.values())
    quant = stages["quantize"].data.metrics
    assert {"quant.chrf_source", "quant.chrf_fp8", "quant.chrf_delta", "quant.size_fp8_bytes"} <= set(quant)
    assert quant["quant.size_fp8_bytes"] < quant["quant.size_source_bytes"]
    judged = [stages[f"judge_filter-{s}"].data.metrics for s in shards]
    assert sum(m["judge.read"] for m in judged) == counts["opus100"]["kept"]
    assert (
        sum(
            m["judge.verdict.accept"] + m["judge.verdict.reject"] + m["judge.verdict.unreadable"]
            for m in judged
        )
        == (counts["opus100"]["kept"])
    )
    teacher = [stages[f"teacher_translate-{s}"].data.metrics for s in shards]
    assert sum(m["teacher.read"] for m in teacher) == counts["openorca"]["kept"]
    assert all(m["teacher.read"] == m["teacher.kept"] + m["teacher.quarantined"] for m in teacher)
    for source in corpus:
        read = sum(
            stages[f"corpus_translate-{source}-{s}"].data.metrics[f"corpus.{source}.read"] for s in shards
        )
        assert read == counts[source]["kept"]
    bilingual = stages["bilingual_set"].data.metrics
    teacher_kept = sum(m["teacher.kept"] for m in teacher)
    assert bilingual["bilingual.pairs_in"] == 2 * teacher_kept + sum(m["judge.kept"] for m in judged)
    assert bilingual["bilingual.train_examples"] + bilingual["bilingual.heldout_examples"] > 0
    tulu = stages["prepare-tulu3"]
    assert tulu.data.metrics["tulu3.read"] == counts["tulu3"]["read"]
    assert tulu.data.metrics["tulu3.quarantined.non_english_subset"] == 11
    inputs = [d.dataset for d in tulu.inputs.dataset_inputs]
    assert [d.name for d in inputs] == ["allenai/tulu-3-sft-mixture"]
    assert json.loads(inputs[0].source)["path"].endswith("fixtures/sources/tulu3")


def test_a_failing_stage_fails_the_run_and_closes_the_parent_as_failed(workdir: Path) -> None:
    data = workdir / "data"
    shutil.copytree(FIXTURES, data)
    (data / "openorca" / "train.jsonl").write_text('{"id": "x", "question": "q"}\n')  # no response column
    preset = workdir / "broken.yaml"
    preset.write_text(
        f"extends: {ROOT / 'pipelines' / 'presets' / 'tiny.yaml'}\n"
        f"name: broken\ndata:\n  root: {data}\ntracking: {{experiment: hala-broken}}\n"
    )
    with pytest.raises(RuntimeError):
        run_local(str(preset), workdir / "runs", run_name="ci-broken")
    runs = _runs(workdir, "hala-broken")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FAILED"
    failed = [r.info.run_name for r in runs if r.info.status == "FAILED" and r is not parent]
    assert failed == ["prepare-openorca"]
