"""Tracking, registration, gates and promotion against `mlflow server` on PostgreSQL, as deployed.

Every other test uses sqlite, which ignores column lengths and serialises writers; the cluster runs
``mlflow server --workers 2`` with basic-auth on PostgreSQL (manifests/base/mlflow/deployment.yaml).
The ``mlflow_postgres`` fixture (tests/pg_server.py) starts that once per session; here the
promotion, preflight and gate-report tests of the sqlite-backed modules run again against it, with
registration, a pipeline run of 16 concurrent shard stages, and the store's value limits.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import traceback
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import pytest
import test_eval_report
import test_preflight
import test_promotion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pg_server import MlflowServer

from hala import registry, tracking
from hala.config import Preset, load_preset
from hala.ops import promotion
from hala.prepare import SourceCounts
from hala.stages import prepare, register
from hala.stages import run as run_stage
from hala.stages.context import ENV_EXPERIMENT, ENV_RUN_ID, open_stage
from hala.stages.sft import LINEAGE_FILE

pytestmark = pytest.mark.server

SHARDS = 16
STEPS = 5


@pytest.fixture(scope="module")
def server(mlflow_postgres: MlflowServer) -> str:
    """The URL the reused tests talk to (their own modules start a sqlite-backed server instead)."""
    return mlflow_postgres.url


@pytest.fixture(autouse=True)
def _as_admin(mlflow_postgres: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Basic-auth is on, as deployed: requests carry the admin's credentials unless a test sets others."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", mlflow_postgres.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", mlflow_postgres.password)
    # test_preflight's tests create users and log in with its module's admin credentials.
    monkeypatch.setattr(test_preflight, "ADMIN", mlflow_postgres.username)
    monkeypatch.setattr(test_preflight, "ADMIN_PASSWORD", mlflow_postgres.password)


@pytest.fixture
def tracked(mlflow_postgres: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """test_eval_report's fixture on this server (a served store takes ``runs:/`` sources, not paths)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_postgres.url)
    mlflow.set_tracking_uri(mlflow_postgres.url)
    parent = start_parent(load_preset("tiny"), "t", "kfp-tracked", tmp_path, monkeypatch)
    client = tracking.registry_client()
    folders = {}
    for name in ("hala-tiny", "hala-translator-tiny"):
        client.create_registered_model(name)
        client.create_model_version(name, source=f"runs:/{parent}/model", run_id=parent)
        folder = tmp_path / f"registered-{name}"
        folder.mkdir()
        (folder / register.REGISTERED_FILE).write_text(json.dumps({"name": name, "version": "1"}))
        folders[name] = str(folder)
    return folders


client = test_promotion.client

# Promotion: gate tags on versions, alias moves, per-version promotion tags, history tag, rollback.
test_promote_a_passing_version = test_promotion.test_promote_a_passing_version
test_promote_a_failing_version_is_refused = test_promotion.test_promote_a_failing_version_is_refused
test_rollback_restores_previous_champions_in_turn = (
    test_promotion.test_rollback_restores_previous_champions_in_turn
)
# Gate verdicts written by the report stages onto model versions.
test_report_records_the_gate_verdict_on_the_model_version = (
    test_eval_report.test_report_records_the_gate_verdict_on_the_model_version
)

# Preflight with basic-auth users kept in the PostgreSQL auth database.
as_admin = test_preflight.as_admin
test_real_server_with_credentials_passes = test_preflight.test_real_server_with_credentials_passes
test_a_plain_user_created_as_in_the_runbook_passes = (
    test_preflight.test_a_plain_user_created_as_in_the_runbook_passes
)
test_real_server_refuses_bad_credentials = test_preflight.test_real_server_refuses_bad_credentials


def test_register_creates_versions_and_moves_candidate(
    mlflow_postgres: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registration as the pipeline does it: a nested run, proxied artifacts, a version, the alias."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_postgres.url)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "tiny"}')
    (model_dir / "model.safetensors").write_bytes(os.urandom(4096))
    lineage = {"data_fingerprint": "abc", "train_files": ["a"], "examples_read": 11, "examples_kept": 10}
    (model_dir / LINEAGE_FILE).write_text(json.dumps(lineage))
    preset = load_preset("tiny")
    parent = start_parent(preset, "register", "kfp-register", tmp_path, monkeypatch)
    settings = register.settings(preset, role="tiny").model_copy(
        update={"registered_name": "hala-pg-register"}
    )
    versions = [
        register.run(settings, str(model_dir), str(tmp_path / f"registered-{i}")).version for i in (1, 2)
    ]
    assert versions == ["1", "2"]
    client = tracking.registry_client()
    latest = client.get_model_version_by_alias("hala-pg-register", registry.CANDIDATE_ALIAS)
    assert str(latest.version) == "2"
    assert latest.tags[registry.TAG_PIPELINE_RUN] == "kfp-register"
    assert latest.tags[registry.TAG_MLFLOW_RUN] == parent
    assert latest.tags[registry.TAG_PRESET_FINGERPRINT] == preset.fingerprint()
    assert json.loads(latest.tags[registry.TAG_DATA_LINEAGE]) == lineage
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'"
    )
    assert sorted(r.info.run_name for r in children) == ["register-hala-pg-register"] * 2
    local = mlflow.artifacts.download_artifacts(
        f"models:/hala-pg-register@{registry.CANDIDATE_ALIAS}", dst_path=str(tmp_path / "dl")
    )
    assert (Path(local) / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()


def start_parent(
    preset: Preset, run_name: str, kfp_run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The parent run of a pipeline run, opened by its start stage, as the tasks' environment names it."""
    monkeypatch.setenv(ENV_RUN_ID, kfp_run_id)
    monkeypatch.setenv(ENV_EXPERIMENT, preset.tracking.experiment)
    folder = tmp_path / f"preset-{kfp_run_id}"
    folder.mkdir()
    (folder / run_stage.PRESET_FILE).write_text(preset.to_json(), encoding="utf-8")
    return run_stage.start(str(folder), run_name, "", {"teacher_translate": "img@sha256:0"}, "")


def _shard(shard: int, env: dict[str, str], barrier: Any, results: Any) -> None:
    """One shard task: find the parent by KFP run id, log counts in a nested run and on the parent."""
    try:
        os.environ.update(env)
        barrier.wait(timeout=120)  # every shard starts logging at the same moment
        with open_stage(f"teacher_translate-{shard}") as stage:
            counts = SourceCounts(
                source=f"shard{shard:02d}",
                hub_id="Open-Orca/OpenOrca",
                revision="main",
                location=f"/work/shard-{shard:05d}",
                read=100 + shard,
                kept=90 + shard,
                quarantined={"empty": 4, "too_long": 6},
                num_shards=SHARDS,
                fingerprint=f"{shard:064x}",
            )
            prepare.log_source_counts(stage, counts)  # metrics here and on the parent, params, files
            for step in range(STEPS):
                mlflow.log_metric("teacher_translate.progress", step / (STEPS - 1), step=step)
        results.put((shard, "ok"))
    except BaseException:
        results.put((shard, traceback.format_exc()))
        raise


def test_sixteen_shards_logging_at_once_lose_no_metric_and_no_nested_run(
    mlflow_postgres: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_postgres.url)
    preset = load_preset("tiny")
    preset_json = preset.to_json()
    parent = start_parent(preset, "shards", "kfp-shards", tmp_path, monkeypatch)
    env = {**mlflow_postgres.env(), ENV_RUN_ID: "kfp-shards", ENV_EXPERIMENT: preset.tracking.experiment}

    # Forked from a server that imported this module once, so the shards start in a fraction of a second
    # (Python 3.11's forkserver ignores sys.path when preloading: it finds this folder on PYTHONPATH).
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    barrier, results = context.Barrier(SHARDS), context.Queue()
    processes = [context.Process(target=_shard, args=(i, env, barrier, results)) for i in range(SHARDS)]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=180) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    failed = {shard: error for shard, error in outcomes.items() if error != "ok"}
    assert not failed, "\n".join(f"shard {s}:\n{e}" for s, e in sorted(failed.items()))
    assert [p.exitcode for p in processes] == [0] * SHARDS
    run_stage.finish("SUCCEEDED")

    client = MlflowClient(mlflow_postgres.url)
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.params[f"{registry.PARAM_IMAGE_PREFIX}teacher_translate"] == "img@sha256:0"
    children = client.search_runs(
        [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'", max_results=100
    )
    assert sorted(c.info.run_name for c in children) == sorted(
        f"teacher_translate-{i}" for i in range(SHARDS)
    )
    on_parent: dict[str, float] = {}
    for child in children:
        assert child.info.status == "FINISHED"
        shard = int(child.info.run_name.rsplit("-", 1)[1])
        source = f"shard{shard:02d}"
        counts = {
            f"{source}.read": 100.0 + shard,
            f"{source}.kept": 90.0 + shard,
            f"{source}.quarantined": 10.0,
            f"{source}.quarantined.empty": 4.0,
            f"{source}.quarantined.too_long": 6.0,
        }
        assert child.data.metrics == {**counts, "teacher_translate.progress": 1.0}, child.info.run_name
        assert child.data.tags["hala.stage"] == child.info.run_name
        assert child.data.params["source"] == source
        on_parent |= counts
    # Every shard wrote its counts onto the one parent run, all at the same time.
    assert {k: v for k, v in run.data.metrics.items() if k.startswith("shard")} == on_parent
    # Every step of every shard's series is in the store (one row each), and every shard's counts file.
    rows = mlflow_postgres.query(
        "SELECT run_uuid, count(*) FROM metrics WHERE key = 'teacher_translate.progress' GROUP BY run_uuid"
    )
    assert dict(rows) == {c.info.run_id: STEPS for c in children}
    files = sorted(p.name for p in mlflow_postgres.artifacts.glob("*/*/artifacts/counts/*.json"))
    assert files == [f"shard{i:02d}.json" for i in range(SHARDS)]
    preset_file = client.download_artifacts(parent, registry.ARTIFACT_PRESET_JSON, str(tmp_path))
    assert Path(preset_file).read_text() == preset_json


def test_value_limits_of_the_postgres_store(mlflow_postgres: MlflowServer, client: MlflowClient) -> None:
    """The column limits PostgreSQL enforces (sqlite does not) on what hala writes.

    Model version tags (gate reasons, lineage) are TEXT; run tags and params hold 8000 characters
    (MLflow refuses params over 6000 itself); registered model tags, which hold the promotion history,
    only 5000, although MLflow's own check lets 100,000 through to the database.
    """
    assert mlflow_postgres.column_limit("model_version_tags", "value") is None
    assert mlflow_postgres.column_limit("tags", "value") == 8000
    assert mlflow_postgres.column_limit("params", "value") == 8000
    assert mlflow_postgres.column_limit("registered_model_tags", "value") == 5000
    model = test_promotion._register(client, ["fail"])
    long_reasons = json.dumps([f"task {i} dropped by 3.10 points: 41.20 -> 38.10" for i in range(500)])
    assert len(long_reasons) > 20_000
    client.set_model_version_tag(model, "1", registry.TAG_GATE_REASONS, long_reasons)
    assert client.get_model_version(model, "1").tags[registry.TAG_GATE_REASONS] == long_reasons
    client.set_registered_model_tag(model, "fits", "x" * 5000)
    with pytest.raises(MlflowException):
        client.set_registered_model_tag(model, "too-long", "x" * 5001)


def test_a_model_promoted_many_times_can_be_promoted_again(
    mlflow_postgres: MlflowServer, client: MlflowClient
) -> None:
    """The history of as many ordinary promotions as the store holds, then one more, as policy allows."""
    policy = promotion.load_policy()
    limit = mlflow_postgres.column_limit("registered_model_tags", "value")
    assert limit == promotion.HISTORY_MAX_CHARS  # the constant hala trims the history to is the schema's
    model = test_promotion._register(client, ["pass", "pass"])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[promotion.PromotionEvent] = []
    while True:  # what `hala promote` records for alternating versions 1 and 2, as long as it fits
        version, previous = (
            ("1", events[-1].version if events else "") if len(events) % 2 == 0 else ("2", "1")
        )
        event = promotion.PromotionEvent(
            alias="champion",
            version=version,
            previous=previous,
            actor="ci-bot",
            time=(start + timedelta(days=len(events))).isoformat(timespec="seconds"),
            reason="gate verdict pass",
            forced=False,
            kind="promote",
        )
        if len(json.dumps([asdict(e) for e in [*events, event]])) > limit:
            break
        events.append(event)
    assert len(events) < policy.history_limit - 1
    history_tag = registry.TAG_PROMOTION_HISTORY_PREFIX + "champion"
    client.set_registered_model_tag(model, history_tag, json.dumps([asdict(e) for e in events]))
    client.set_registered_model_alias(model, "champion", events[-1].version)

    again = "2" if events[-1].version == "1" else "1"
    # The history is trimmed to the newest events that fit the column (hala.ops.promotion.history_json).
    promotion.promote(client, policy, model, again, alias="champion", actor="ci-bot")
    assert [e.version for e in promotion.history(client, model, "champion")][-2:] == [
        events[-1].version,
        again,
    ]
