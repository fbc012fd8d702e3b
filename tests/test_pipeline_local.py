"""The whole pipeline through KFP's local runner, tracked in a sqlite MLflow store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from conftest import FIXTURES
from hala.config import load_preset
from hala.sources import SOURCES
from hala_pipelines.graph import build_pipeline
from hala_pipelines.local import LocalRun, count_tasks, run_local
from hala_pipelines.summary import report_tables, source_counts, stage_runs

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the embedded default writes mlflow.db to the working folder
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PATH", __import__("os").environ["PATH"])  # restored after run_local prepends
    return tmp_path


def _run_tiny(root: Path, run_name: str, preset: str = "tiny", **kwargs: object) -> LocalRun:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the embedded default writes mlflow.db to the working folder
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("PATH", os.environ["PATH"])  # restored after run_local prepends the venv
        for name in ("HALA_RUN_ID", "HALA_WORK_ROOT"):
            mp.delenv(name, raising=False)  # run_local sets them for its tasks
        return run_local(preset, root / "runs", run_name=run_name, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LocalRun]:
    """One whole tiny run, cold (nothing cached yet), shared by the tests that read it."""
    root = tmp_path_factory.mktemp("tiny")
    return root, _run_tiny(root, "ci-tiny")


BOOKKEEPING = {"settings-op", "preflight-op", "start-op", "finish-op"}  # every run, never from the cache
REPORTS = {"benchmark-report-op", "translation-report-op"}  # they apply the gates: every run too


def _runs(tmp_path: Path, experiment: str) -> list[mlflow.entities.Run]:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def test_tiny_pipeline_prepares_every_source_and_tracks_it(tiny_run: tuple[Path, LocalRun]) -> None:
    workdir, result = tiny_run
    assert result.tracking_uri == f"sqlite:///{workdir / 'mlflow.db'}"
    # Every task of the graph ran once (loop bodies once per shard), timed, and succeeded.
    expected = count_tasks(build_pipeline(load_preset("tiny"), "x").pipeline_spec)  # type: ignore[attr-defined]
    assert len(result.tasks) == expected and {t.status for t in result.tasks} == {"SUCCESS"}
    assert len(result.executed()) == expected  # cold: nothing came from the cache
    assert sum(t.seconds for t in result.tasks) > 0 and len(result.slowest(10)) == 10
    counts = {c["source"]: c for c in source_counts(stage_runs(result))}
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
    assert parent.data.params["hala.image.train"].startswith("ghcr.io/hala-mlops/hala-train")
    preset_file = MlflowClient().download_artifacts(parent.info.run_id, "preset.json", str(workdir))
    assert Path(preset_file).read_text() == load_preset("tiny").to_json()
    assert len(parent.data.tags["hala.git_commit"]) == 40 or parent.data.tags["hala.git_commit"] == "unknown"
    assert parent.data.tags["hala.version.kfp"]
    assert parent.data.metrics["openorca.kept"] == counts["openorca"]["kept"]

    stages = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    shards = range(load_preset("tiny").data.num_shards)
    corpus = load_preset("tiny").corpus.sources
    assert set(stages) == {
        *(f"prepare-{k}" for k in SOURCES),
        "quantize",
        "validate_fp8",
        "bilingual_set",
        *(f"teacher_translate-{s}" for s in shards),
        *(f"judge_filter-{s}" for s in shards),
        *(f"corpus_translate-{k}-{s}" for k in corpus for s in shards),
        "corpus",
        "sft-translator",
        "sft-tiny",
        "merge-tiny",
        "register-hala-translator-tiny",
        "register-hala-tiny",
        *(f"evaluate-tiny-{v}" for v in ("base", "finetuned", "merged")),
        *(f"translation_eval-{s}" for s in ("translator_base", "translator", "teacher", "teacher_fp8")),
        "contamination",
        "report-tiny",
        "report-translation",
    }
    assert all(r.info.status == "FINISHED" for r in stages.values())
    quant = stages["validate_fp8"].data.metrics
    assert {"quant.chrf_source", "quant.chrf_fp8", "quant.chrf_delta", "quant.size_fp8_bytes"} <= set(quant)
    assert quant["quant.size_fp8_bytes"] < quant["quant.size_source_bytes"]
    assert quant["quant.speedup"] > 0 and quant["quant.report_speedup"] == 2.0
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
    # The judge's acceptance over all shards, beside the report's 439,592 of ~1M.
    assert bilingual["judge.accepted"] == sum(m["judge.kept"] for m in judged)
    assert bilingual["judge.judged"] == sum(m["judge.read"] for m in judged)
    assert bilingual["judge.report_acceptance_rate"] == pytest.approx(0.439592)
    # Training: the translator on the bilingual set, the student on the corpus, merged, both registered.
    translator = stages["sft-translator"].data
    assert translator.metrics["sft.examples_read"] == bilingual["bilingual.train_examples"]
    assert translator.metrics["sft.global_step"] == load_preset("tiny").translator.training.max_steps
    assert translator.metrics["sft.tokens_per_second"] > 0 and "sft.eval_loss" in translator.metrics
    client = MlflowClient()
    assert [m.step for m in client.get_metric_history(stages["sft-tiny"].info.run_id, "train.loss")] == [
        2,
        4,
        6,
        8,
        10,
        12,
    ]
    corpus_kept = sum(
        stages[f"corpus_translate-{k}-{s}"].data.metrics[f"corpus.{k}.kept"] for k in corpus for s in shards
    )
    assert stages["sft-tiny"].data.metrics["sft.examples_read"] == corpus_kept
    assert stages["merge-tiny"].data.params["merge.t"] == "0.5"
    for name, base in (("hala-tiny", "tiny:student"), ("hala-translator-tiny", "tiny:translator-base")):
        version = client.get_model_version_by_alias(name, "candidate")
        assert version.tags["hala.base_model"] == base
        assert version.tags["hala.mlflow_run"] == parent.info.run_id
        assert json.loads(version.tags["hala.data_lineage"])["examples_kept"] > 0
    # Evaluation: six benchmarks per variant, Table 2 per system, gates recorded on the versions.
    benchmarks = load_preset("tiny").eval.benchmarks
    for variant in ("base", "finetuned", "merged"):
        scores = stages[f"evaluate-tiny-{variant}"].data.metrics
        assert {f"eval.{b}" for b in [*benchmarks, "average"]} <= set(scores)
        assert all(0.0 <= scores[f"eval.{b}"] <= 1.0 for b in benchmarks)
    for system in ("translator_base", "translator", "teacher", "teacher_fp8"):
        metrics = stages[f"translation_eval-{system}"].data.metrics
        assert metrics["translation.n"] > 0 and {"translation.chrf", "translation.rouge_l_arabic"} <= set(
            metrics
        )
    contamination = stages["contamination"].data.metrics
    assert {f"contamination.{b}.fraction" for b in [*benchmarks, "mmlu"]} <= set(contamination)
    for name in ("hala-tiny", "hala-translator-tiny"):
        version = client.get_model_version_by_alias(name, "candidate")
        assert version.tags["hala.gate.verdict"] in {"pass", "fail"}
        assert isinstance(json.loads(version.tags["hala.gate.reasons"]), list)
    tables = report_tables(result)
    assert len(tables) == 2
    # Table 1's layout: our base, fine-tune and HALA rows first, then the report's nano bucket.
    assert "| Size | Model | Params | AlGhafa |" in tables[0] and "| Average |" in tables[0]
    assert "| nano | hala-tiny |" in tables[0] and "| nano (report) | HALA-1.2B |" in tables[0]
    assert "Gate verdict on hala-tiny version 1" in tables[0]
    assert "| teacher_fp8 |" in tables[1] and "ROUGE-L (Arabic-aware)" in tables[1]
    page = result.report_page()
    assert page is not None and (page.parent.parent / "benchmark-report-op" / "report" / "chart.png").exists()
    tulu = stages["prepare-tulu3"]
    assert tulu.data.metrics["tulu3.read"] == counts["tulu3"]["read"]
    assert tulu.data.metrics["tulu3.quarantined.non_english_subset"] == 11
    inputs = [d.dataset for d in tulu.inputs.dataset_inputs]
    assert [d.name for d in inputs] == ["allenai/tulu-3-sft-mixture"]
    assert json.loads(inputs[0].source)["path"].endswith("fixtures/sources/tulu3")


def test_a_failing_stage_fails_the_run_and_closes_the_parent_as_failed(
    tiny_run: tuple[Path, LocalRun],
) -> None:
    """Shares the cold run's cache: only what the broken source changes runs again."""
    root, _ = tiny_run
    data = root / "broken-data"
    shutil.copytree(FIXTURES, data)
    (data / "openorca" / "train.jsonl").write_text('{"id": "x", "question": "q"}\n')  # no response column
    with pytest.raises(RuntimeError):
        _run_tiny(root, "ci-broken", overrides={"data.root": str(data)})
    runs = _runs(root, "hala-tiny")
    (parent,) = [r for r in runs if r.info.run_name == "ci-broken"]
    assert parent.info.status == "FAILED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    failed = [r.info.run_name for r in children if r.info.status == "FAILED"]
    assert failed == ["prepare-openorca"]
    assert not [
        r.info.run_name for r in children if r.info.status == "RUNNING"
    ]  # the exit handler closed all


def _digests(result: LocalRun) -> dict[str, str]:
    """Dataset fingerprints and SHA-256 of every model weight file of a run, by task-relative path."""
    run = result.run_folder
    assert run is not None
    found = {
        f"fingerprint:{c['source']}": str(c["fingerprint"])
        for c in (json.loads(p.read_text()) for p in run.glob("prepare-source-op*/prepared/counts.json"))
    }
    for path in sorted(run.rglob("*.safetensors")):
        found[str(path.relative_to(run))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_two_runs_with_the_same_inputs_give_the_same_data_and_weights(
    tiny_run: tuple[Path, LocalRun], tmp_path: Path
) -> None:
    _, first = tiny_run
    second = _run_tiny(tmp_path, "ci-tiny-again", cache=False)  # computes everything again
    a, b = _digests(first), _digests(second)
    weights = [k for k in a if k.endswith(".safetensors")]
    assert any("sft-op" in k for k in weights) and any("merge-op" in k for k in weights)
    assert len([k for k in a if k.startswith("fingerprint:")]) == len(SOURCES)
    assert a == b


# --- issue 12: an identical or nearly identical rerun pays only for what changed ----------------------


def _executed(result: LocalRun) -> set[str]:
    """The tasks that ran, by component (loop iterations and numbered copies folded)."""
    return {name.split("-iteration-")[0].rstrip("-0123456789") for name in result.executed()}


def test_an_identical_rerun_reuses_every_stage_and_shows_them_reused(tiny_run: tuple[Path, LocalRun]) -> None:
    root, cold = tiny_run
    again = _run_tiny(root, "ci-tiny-cached")
    assert _executed(again) == BOOKKEEPING | REPORTS
    runs = _runs(root, "hala-tiny")
    by_name = {r.info.run_name: r for r in runs}
    cold_parent, parent = by_name["ci-tiny"], by_name["ci-tiny-cached"]
    cold_stages = {r.info.run_name: r for r in stage_runs(cold)}
    stages = {r.info.run_name: r for r in stage_runs(again)}
    assert set(stages) == set(cold_stages)  # the rerun's parent shows every stage
    for name, run in stages.items():
        if name in {"report-tiny", "report-translation"}:
            assert "hala.reused_from" not in run.data.tags  # reports ran again
            continue
        assert run.data.tags["hala.reused_from"] == cold_stages[name].info.run_id, name
        assert run.data.metrics == cold_stages[name].data.metrics, name  # its figures, copied
    assert parent.data.metrics["openorca.kept"] == cold_parent.data.metrics["openorca.kept"]
    assert parent.info.status == "FINISHED"


def test_a_changed_gate_reruns_only_the_gates(tiny_run: tuple[Path, LocalRun]) -> None:
    root, _ = tiny_run
    gated = _run_tiny(
        root, "ci-tiny-gate", params={"gate_max_task_drop": 99.0, "gate_min_average_gain": -99.0}
    )
    assert _executed(gated) == BOOKKEEPING | REPORTS
    client = MlflowClient(gated.tracking_uri, registry_uri=gated.tracking_uri)
    version = client.get_model_version_by_alias("hala-tiny", "candidate")
    reasons = json.loads(version.tags["hala.gate.reasons"])
    assert not any("average" in r or "drop" in r for r in reasons)  # judged by the new gate


def test_a_students_learning_rate_reruns_only_that_students_chain(tiny_run: tuple[Path, LocalRun]) -> None:
    root, _ = tiny_run
    changed = _run_tiny(root, "ci-tiny-lr", params={"sft_tiny_learning_rate": 5e-4})  # tiny trains at 1e-3
    assert _executed(changed) == BOOKKEEPING | REPORTS | {"sft-op", "merge-op", "register-op", "evaluate-op"}
    ran = [name for name in changed.executed() if name.startswith(("sft-op", "evaluate-op"))]
    assert len([n for n in ran if n.startswith("sft-op")]) == 1  # the translator's SFT came from the cache
    assert (
        len([n for n in ran if n.startswith("evaluate-op")]) == 2
    )  # fine-tune and merged; the base did not change


# --- issue 14: the real tiny run's report page, as a person sees it in a browser ----------------------


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no chromium: scripts/system_deps.sh installs Debian's package"
)
def test_the_tiny_runs_report_page_renders_every_table_and_chart(
    tiny_run: tuple[Path, LocalRun], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from test_run_report import WIDTH, browser_probe, screenshot

    _, result = tiny_run
    page = result.report_page()
    assert page is not None
    folder = tmp_path_factory.getbasetemp() / "tiny-run-report"
    folder.mkdir(exist_ok=True)
    probe = browser_probe(page, folder)
    images = {i["id"]: i for i in probe["images"]}
    assert images.pop("control-broken")["ok"] is False
    assert {"chart-table1-tiny", "chart-funnel", "chart-sft-translator", "chart-sft-tiny"} <= set(images)
    assert all(i["ok"] and i["shown"] for i in images.values()), images  # no broken image
    tables = {t["id"]: t for t in probe["tables"]}
    assert {"table1-tiny", "table2", "models", "funnel", "sft", "judge", "fp8", "lineage"} <= set(tables)
    # A clean cold run: every stage finished in one attempt, said in a line rather than a table.
    assert "stages" not in tables and "stages finished, each in one attempt" in page.read_text()
    assert all(t["rows"] > 0 and t["shown"] for t in tables.values()), tables
    shot = screenshot(page, folder / "tiny_run_report.png", min(int(probe["height"]) + 40, 16000), folder)
    print(f"\ntiny run report screenshot: {shot} (page {page}, {WIDTH} px wide)")
