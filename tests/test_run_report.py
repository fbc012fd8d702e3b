"""The run report (issue 14), on a real MLflow store that the tests write in the pipeline's layout.

The store holds a parent run (tags, params, the ``preset.json`` artifact) and nested stage runs with
fixed start and end times, metrics, an SFT metric history, a retried shard, a failed shard, a reused
stage and registered versions with aliases and gate verdicts: every figure on the page is checked
against what was written. The last test renders the page in headless Chromium, checks what a person
would see (every table and chart there, no broken image, Arabic set right to left) and saves a
screenshot under the pytest base temp folder (its path is printed; ``pytest --basetemp=DIR`` fixes it).
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from hala import registry
from hala.config import Preset, load_preset
from hala.errors import HalaError
from hala.run_report import build_report, log_compute_metrics, write_report
from hala.run_report.compute import by_category, stage_compute
from hala.run_report.facts import funnel
from hala.run_report.gather import gather

T0 = 1_790_000_000_000  # ms since the epoch
MIN = 60_000
TASKS = ("alghafa", "arabic_mmlu", "arabic_exams", "madinah_qa", "aratrust", "arabic_mmlu_ht")
ARABIC = "ما هي عاصمة فرنسا؟"


def gpu_preset(prices: dict[str, float] | None = None) -> Preset:
    """Tiny with 2 shards, a vLLM teacher (2 GPUs, translation pool) and an 8-GPU translator SFT."""
    raw = json.loads(load_preset("tiny").to_json())
    raw["data"]["num_shards"] = 2  # the store has two shards of a stage
    raw["teacher"]["engine"].update(kind="vllm", tensor_parallel_size=2)
    raw["translator"]["training"].update(gpus=8, effective_batch_size=64)
    raw["cluster"]["teacher_pool"] = "translation_pool"
    per_gpu_hour = {"translation_pool": 2.0, "training_pool": 4.0} if prices is None else prices
    raw["prices"] = {"per_gpu_hour": per_gpu_hour}
    return Preset.model_validate(raw)


@dataclass
class Store:
    client: MlflowClient
    uri: str
    parent: str
    preset: Preset


def _stage(
    client: MlflowClient,
    experiment: str,
    parent: str,
    name: str,
    start_min: float,
    minutes: float,
    metrics: dict[str, float] | None = None,
    status: str = "FINISHED",
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> str:
    start = T0 + int(start_min * MIN)
    run = client.create_run(
        experiment,
        start_time=start,
        run_name=name,
        tags={"mlflow.parentRunId": parent, "hala.stage": name, **(tags or {})},
    )
    run_id = run.info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, start, 0) for k, v in (metrics or {}).items()],
        params=[],
    )
    for key, value in (params or {}).items():
        client.log_param(run_id, key, value)
    client.set_terminated(run_id, status=status, end_time=start + int(minutes * MIN))
    return run_id


def _eval_metrics(offset: float, points: bool, variant: str = "") -> dict[str, float]:
    scores = {task: 30.0 + offset + i for i, task in enumerate(TASKS)}
    scores["average"] = sum(scores.values()) / len(TASKS)
    if points:
        return {f"eval.{variant}.{k}": v for k, v in scores.items()}
    return {f"eval.{k}": v / 100 for k, v in scores.items()} | {
        "eval.samples.alghafa": 8.0,
        "eval.parameters": 354e6,
    }


def _register(client: MlflowClient, name: str, run_id: str, parent: str, tags: dict[str, str]) -> str:
    client.create_registered_model(name)
    version = client.create_model_version(
        name,
        source=f"runs:/{run_id}/model",
        run_id=run_id,
        tags={registry.TAG_MLFLOW_RUN: parent, **tags},
    )
    return str(version.version)


def write_store(root: Path, preset: Preset) -> Store:
    """A parent run and its stage runs as a pipeline leaves them (failed, retried and reused ones too)."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("hala-tiny", artifact_location=(root / "artifacts").as_uri())
    parent = client.create_run(
        exp,
        start_time=T0,
        run_name="tiny-report-test",
        tags={
            "hala.kfp_run_id": "kfp-123",
            "hala.git_commit": "0123456789abcdef",
            registry.TAG_KFP_RUN_LINK: "https://kfp.example/#/runs/details/kfp-123",
            "hala.version.mlflow": "3.17.0",
        },
    ).info.run_id
    for key, value in {
        "preset": preset.name,
        "preset_fingerprint": preset.fingerprint(),
        "seed": str(preset.seed),
        f"{registry.PARAM_IMAGE_PREFIX}train": "ghcr.io/hala/train@sha256:feed",
    }.items():
        client.log_param(parent, key, value)
    client.log_text(parent, preset.to_json(), registry.ARTIFACT_PRESET_JSON)

    def stage(name: str, start: float, minutes: float, **kw: Any) -> str:
        return _stage(client, exp, parent, name, start, minutes, **kw)

    source_params = {"hub_id": "Open-Orca/OpenOrca", "revision": "rev-orca"}
    stage(
        "prepare-openorca",
        0,
        1,
        params=source_params,
        metrics={
            "openorca.read": 40,
            "openorca.kept": 36,
            "openorca.quarantined": 4,
            "openorca.quarantined.empty_text": 4,
        },
    )
    stage(
        "prepare-opus100",
        0,
        1,
        params={"hub_id": "Helsinki-NLP/opus-100", "revision": "rev-opus"},
        metrics={"opus100.read": 20, "opus100.kept": 19, "opus100.quarantined.duplicate_id": 1},
    )
    stage(
        "validate_fp8",
        1,
        12,
        params={"quant.timing_device": "cuda"},
        metrics={
            "quant.chrf_source": 60.0,
            "quant.chrf_fp8": 59.5,
            "quant.chrf_delta": -0.5,
            "quant.speedup": 1.8,
            "quant.n_samples": 8,
            "quant.report_speedup": 2.0,
        },
    )
    stage(
        "teacher_translate-0",
        13,
        30,
        metrics={"teacher.read": 18, "teacher.kept": 17, "teacher.quarantined.truncated": 1},
    )
    stage("teacher_translate-1", 13, 6, status="FAILED")  # preempted, then retried
    stage("teacher_translate-1", 20, 30, metrics={"teacher.read": 18, "teacher.kept": 18})
    stage(
        "judge_filter-0", 13, 10, metrics={"judge.read": 10, "judge.kept": 4, "judge.quarantined.reject": 6}
    )
    stage("judge_filter-1", 13, 3, status="FAILED")  # so bilingual_set and what follows never ran
    sft = stage(
        "sft-translator",
        60,
        120,
        metrics={
            "sft.global_step": 6,
            "sft.train_loss": 1.5,
            "sft.wall_seconds": 7200,
            "sft.examples_kept": 64,
        },
    )
    history = [Metric("train.loss", 3.0 - 0.4 * s, T0, s) for s in (2, 4, 6)]
    history += [Metric("train.learning_rate", 1e-3 * s / 6, T0, s) for s in (2, 4, 6)]
    history += [Metric("eval.loss", 2.2, T0, 6)]
    client.log_batch(sft, metrics=history)
    reg = stage("register-hala-translator-tiny", 181, 1, tags={"hala.reused_from": "feedbeef0000"})
    items = [
        {"index": 0, "source": "What is the capital of France?", "reference": ARABIC, "hypothesis": ARABIC}
    ]
    for system, bleu in (("translator_base", 10.0), ("translator", 20.0)):
        run = stage(
            f"translation_eval-{system}",
            182,
            2,
            metrics={
                "translation.bleu": bleu,
                "translation.chrf": 2 * bleu,
                "translation.rouge_l": bleu / 2,
                "translation.rouge_l_arabic": bleu / 3,
                "translation.n": 16,
                "translation.failed": 0,
            },
        )
        client.log_text(
            run,
            "\n".join(json.dumps(i, ensure_ascii=False) for i in items),
            f"translation/{system}/items.jsonl",
        )
    for i, variant in enumerate(("base", "finetuned", "merged")):
        stage(f"evaluate-tiny-{variant}", 190, 5, metrics=_eval_metrics(i, points=False))
    stage(
        "report-tiny",
        196,
        1,
        metrics={
            k: v
            for i, variant in enumerate(("base", "finetuned", "merged"))
            for k, v in _eval_metrics(i, points=True, variant=variant).items()
        },
    )
    gate = {
        registry.TAG_GATE_VERDICT: "fail",
        registry.TAG_GATE_REASONS: json.dumps(["task alghafa: drop 4.0"]),
    }
    student = _register(client, "hala-tiny", reg, parent, {registry.TAG_ROLE: "student", **gate})
    client.set_registered_model_alias("hala-tiny", registry.CANDIDATE_ALIAS, student)
    passed = {
        registry.TAG_GATE_VERDICT: "pass",
        registry.TAG_GATE_REASONS: "[]",
        registry.TAG_ROLE: "translator",
    }
    translator = _register(client, "hala-translator-tiny", reg, parent, passed)
    for alias in (registry.CANDIDATE_ALIAS, registry.CHAMPION_ALIAS):
        client.set_registered_model_alias("hala-translator-tiny", alias, translator)
    earlier = client.create_run(exp, start_time=T0 - 600 * MIN, run_name="earlier").info.run_id
    producer = _stage(client, exp, earlier, "sft-tiny", -500, 10, metrics={"sft.global_step": 4})
    client.log_batch(producer, metrics=[Metric("train.loss", 2.0 - 0.1 * s, T0, s) for s in (1, 2, 3, 4)])
    stage("sft-tiny", 185, 0.1, metrics={"sft.global_step": 4}, tags={"hala.reused_from": producer})
    client.set_terminated(parent, status="FAILED", end_time=T0 + 200 * MIN)
    return Store(client, uri, parent, preset)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return write_store(tmp_path_factory.mktemp("report-store"), gpu_preset())


def test_compute_is_wall_time_times_gpus_times_price(store: Store) -> None:
    rows = {r.name: r for r in stage_compute(gather(store.parent, store.client).stages, store.preset)}
    teacher = rows["teacher_translate-1"]  # 6 + 30 minutes over two attempts, 2 GPUs (tensor parallel)
    assert (teacher.attempts, teacher.pool, teacher.gpus, teacher.status) == (
        2,
        "translation_pool",
        2,
        "FINISHED",
    )
    assert teacher.gpu_hours == pytest.approx(1.2) and teacher.cost == pytest.approx(2.4)
    sft = rows["sft-translator"]  # 120 minutes x 8 GPUs x $4
    assert (sft.pool, sft.gpus, sft.gpu_hours, sft.cost) == (
        "training_pool",
        8,
        pytest.approx(16),
        pytest.approx(64),
    )
    assert rows["judge_filter-0"].gpus == 0 and rows["judge_filter-0"].cost == 0  # transformers: the CPU pool
    assert rows["bilingual_set"].status == "NOT RUN" and rows["bilingual_set"].attempts == 0
    assert rows["register-hala-translator-tiny"].reused_from == "feedbeef0000"
    cats = by_category(list(rows.values()))
    assert cats["translation"].gpu_hours == pytest.approx(
        0.4 + 1.0 + 1.2
    )  # the FP8 check + both teacher shards
    assert cats["translation"].cost == pytest.approx(5.2)
    assert cats["total"].cost == pytest.approx(69.2)


def test_compute_metrics_are_logged_on_the_parent_run(store: Store) -> None:
    logged = log_compute_metrics(store.parent, store.client)  # the preset comes from preset.json
    metrics = store.client.get_run(store.parent).data.metrics
    assert metrics["compute.training.cost_usd"] == pytest.approx(64)
    assert metrics["compute.translation.gpu_hours"] == pytest.approx(2.6)
    assert metrics["compute.total.cost_usd"] == pytest.approx(69.2)
    assert metrics["compute.group.teacher_translate.gpu_hours"] == pytest.approx(2.2)
    assert metrics["compute.report.training_cost_usd"] == 1000
    assert metrics["compute.report.translation_cost_usd"] == 500
    assert {k: metrics[k] for k in logged} == pytest.approx(logged)


def test_gpu_hours_without_a_price_have_no_cost(store: Store) -> None:
    preset = gpu_preset(prices={"translation_pool": 2.0})
    rows = stage_compute(gather(store.parent, store.client).stages, preset)
    training = by_category(rows)["training"]
    assert training.gpu_hours == pytest.approx(16) and training.unpriced_gpu_hours == pytest.approx(16)
    assert training.cost == 0  # the priced part only; the page says what has no price
    page = build_report(store.parent, store.client, preset)
    assert "16.00 GPU-h without a price" in page


def test_funnel_counts_read_kept_translated_and_quarantined(store: Store) -> None:
    rows = {r.source: r for r in funnel(gather(store.parent, store.client))}
    orca = rows["openorca"]
    assert (orca.read, orca.kept, orca.out["teacher"]) == (40, 36, 35)  # the retried shard counted once
    assert orca.quarantined == {"prepare: empty_text": 4, "teacher_translate: truncated": 1}
    assert "corpus" not in orca.out  # no corpus shard ran
    opus = rows["opus100"]
    assert opus.out == {"judge": 4} and opus.quarantined["judge_filter: reject"] == 6
    assert rows["lamini"].status == "NOT RUN" and rows["lamini"].read is None


def test_page_shows_tables_gates_models_stages_and_lineage(store: Store) -> None:
    page = build_report(store.parent, store.client)
    for table_id in ("table1-tiny", "table2", "table2-samples", "models", "funnel", "sft", "judge", "fp8"):
        assert f'id="{table_id}"' in page
    assert "HALA-1.2B" in page and "51.4 (+5.1)" in page  # the report's nano rows beside ours
    assert "<td>354M</td>" in page  # Params: each variant's eval.parameters
    assert "HALA-LFM2-1.2B Translator (ours)" in page and "48.2 (+32.1)" in page
    assert "20.0 (+10.0)" in page  # our translator's BLEU over its base
    assert "task alghafa: drop 4.0" in page and "candidate, champion" in page
    assert f'<td dir="rtl" lang="ar">{ARABIC}</td>' in page
    assert "$69.20" in page and "$1,000 (8xH100-SXM)" in page and "$500 (12xA100)" in page
    assert "reused the outputs of run feedbeef0000" in page
    assert "corpus_translate-lamini (2 shards)" in page and 'class="failed">failed' in page
    assert 'href="https://kfp.example/#/runs/details/kfp-123"' in page
    assert "Helsinki-NLP/opus-100 @ rev-opus" in page and store.preset.fingerprint() in page
    assert "<script" not in page and "http://" not in page  # works offline, in a sandboxed iframe


def test_a_reused_stage_shows_its_producers_curves_and_links_to_it(store: Store) -> None:
    snapshot = gather(store.parent, store.client)
    reused = snapshot.latest()["sft-tiny"]
    assert reused.reused_from and reused.seconds == pytest.approx(6)
    assert [v for _, v in snapshot.histories["sft-tiny"]["train.loss"]] == pytest.approx([1.9, 1.8, 1.7, 1.6])
    page = build_report(store.parent, store.client)
    assert 'id="chart-sft-tiny"' in page and f"reused the outputs of run {reused.reused_from}" in page


def test_a_rerun_that_reused_a_register_stage_lists_the_version_it_reused(store: Store) -> None:
    """A cached rerun registers nothing new: its page lists the version the earlier run registered."""
    exp = store.client.get_run(store.parent).info.experiment_id
    earlier = store.client.create_run(exp, start_time=T0 - 900 * MIN, run_name="earlier-reg").info.run_id
    producer = _stage(store.client, exp, earlier, "register-hala-reused", -800, 1)
    version = _register(store.client, "hala-reused", producer, earlier, {registry.TAG_ROLE: "student"})
    rerun = store.client.create_run(exp, start_time=T0 - 100 * MIN, run_name="rerun").info.run_id
    _stage(store.client, exp, rerun, "register-hala-reused", -90, 0.1, tags={"hala.reused_from": producer})
    versions = gather(rerun, store.client).versions
    assert [(v.name, v.version) for v in versions] == [("hala-reused", version)]
    assert gather(earlier, store.client).versions == versions  # the run that registered it lists it too
    assert 'id="models"' in build_report(rerun, store.client)


def test_page_of_a_run_that_failed_before_any_stage(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("hala-tiny", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, start_time=T0, run_name="broken").info.run_id
    client.set_terminated(parent, status="FAILED", end_time=T0 + MIN)
    page = build_report(parent, client)
    assert "no preset.json artifact" in page and "no source was prepared" in page
    assert "Table 2: no translation_eval stage finished" in page


def test_cli_rebuilds_the_page_from_the_store(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hala.run_report.cli import register

    parser = argparse.ArgumentParser(prog="hala")
    register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "reports" / "run.html"
    args = parser.parse_args(["report", store.parent, "--out", str(out), "--tracking-uri", store.uri])
    assert args.func(args) == 0
    assert str(out) in capsys.readouterr().out and 'id="lineage"' in out.read_text(encoding="utf-8")
    args = parser.parse_args(["report", "no-such-run", "--out", str(out), "--tracking-uri", store.uri])
    with pytest.raises(HalaError, match="no MLflow run no-such-run"):
        args.func(args)


# --- as a person looks at it: headless Chromium ---------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
PROBE = """<script>
window.addEventListener("load", () => {
  const box = (e) => e.getBoundingClientRect();
  const images = [...document.images].map((i) => ({id: i.id, ok: i.complete && i.naturalWidth > 0,
    width: i.naturalWidth, shown: box(i).width > 0 && box(i).height > 0}));
  const tables = [...document.querySelectorAll("table")].map((t) => ({id: t.id,
    rows: t.tBodies[0] ? t.tBodies[0].rows.length : 0, shown: box(t).height > 0}));
  const arabic = [...document.querySelectorAll('[lang="ar"]')].map((e) => getComputedStyle(e).direction);
  const out = document.createElement("pre");
  out.id = "browser-probe";
  out.textContent = JSON.stringify({images, tables, arabic, height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>"""
WIDTH = 1280
BROKEN = (  # a control: the probe must report this image as broken
    '<img id="control-broken" style="display: none" src="data:image/png;base64,AAAA" alt="broken on purpose">'
)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a throwaway profile in ``work`` (no network, no first-run, no sandbox)."""
    command = [str(chromium()), *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def browser_probe(page: Path, work: Path) -> dict[str, Any]:
    """Load a copy of ``page`` with a probe script (and one broken image, a control) and read the result."""
    probed = work / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", f"{BROKEN}{PROBE}</body>"), "utf-8")
    # the virtual time budget lets the load event and the probe run before the DOM is dumped
    done = run_chromium(
        work, f"--window-size={WIDTH},1000", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()
    )
    start = done.stdout.find('<pre id="browser-probe">')
    assert start >= 0, f"no probe result in Chromium's DOM: {done.stderr[-2000:]}"
    text = done.stdout[start + len('<pre id="browser-probe">') : done.stdout.index("</pre>", start)]
    return dict(json.loads(html.unescape(text)))


def screenshot(page: Path, out: Path, height: int, work: Path) -> Path:
    """A screenshot of the whole page (``WIDTH`` px wide, ``height`` tall) as Chromium draws it."""
    done = run_chromium(work, f"--window-size={WIDTH},{height}", f"--screenshot={out}", page.as_uri())
    assert done.returncode == 0 and out.exists(), done.stderr[-2000:]
    return out


@pytest.mark.component
@pytest.mark.skipif(
    chromium() is None, reason="no chromium: scripts/system_deps.sh installs Debian's package"
)
def test_page_in_headless_chromium(store: Store, tmp_path_factory: pytest.TempPathFactory) -> None:
    from PIL import Image

    folder = tmp_path_factory.getbasetemp() / "run-report"
    folder.mkdir(exist_ok=True)
    page = write_report(store.parent, store.client, folder / "run_report.html")
    probe = browser_probe(page, folder)
    images = {i["id"]: i for i in probe["images"]}
    assert images.pop("control-broken")["ok"] is False  # the check does see a broken image
    charts = {"chart-table1-tiny", "chart-funnel", "chart-sft-translator", "chart-sft-tiny", "chart-compute"}
    assert set(images) == charts
    assert all(i["ok"] and i["shown"] and i["width"] >= 600 for i in images.values()), images
    tables = {t["id"]: t for t in probe["tables"]}
    expected = {"table1-tiny", "table2", "table2-samples", "models", "funnel", "sft", "judge", "fp8"}
    expected |= {"compute-totals", "compute-stages", "stages", "lineage"}
    assert set(tables) == expected
    assert all(t["rows"] > 0 and t["shown"] for t in tables.values()), tables
    assert probe["arabic"] and set(probe["arabic"]) == {"rtl"}
    shot = screenshot(page, folder / "run_report.png", min(int(probe["height"]) + 40, 16000), folder)
    with Image.open(shot) as image:
        assert image.width == WIDTH and image.height > 2000
        colors = image.convert("RGB").getcolors(maxcolors=image.width * image.height)
        assert colors is not None and len(colors) > 50  # not a blank page
    print(f"\nrun report screenshot: {shot}\nrun report page: {page}")
