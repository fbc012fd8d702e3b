"""Preflight against a sqlite store and a real `mlflow server` (basic-auth, sqlite) on loopback."""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pg_server import start_server, stop_server, wait_healthy

from hala.errors import HalaError
from hala.preflight import PreflightError, preflight, required_env_for

ADMIN, ADMIN_PASSWORD = "admin", "preflight-admin-pw"  # a throwaway server's bootstrap admin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def leftover_probes(uri: str) -> list[str]:
    return [m.name for m in MlflowClient(uri, uri).search_registered_models() if "preflight" in m.name]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A basic-auth tracking server that admits only the Host ``localhost:<port>``."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    (root / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root}/auth.db\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 600\n"  # hash each password once, not on every request
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job consumers
    }
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"),
        *("--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", str(root / "art")),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--allowed-hosts", f"localhost:{port}"),
    ]
    process = start_server(command, env, root)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, root / "server.log")
        uri = f"http://localhost:{port}"
        # Warm up: the first authenticated request (workers importing, auth tables) can take long here.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
            patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
            patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "180")
            MlflowClient(uri).search_experiments(max_results=1)
        yield uri
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store for the module: creating its tables takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite-store')}/mlflow.db"


@pytest.fixture
def as_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)


def test_sqlite_store_passes_every_check_and_leaves_no_probe(
    sqlite_uri: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    uri = sqlite_uri
    out = tmp_path / "work" / "new"
    passed = preflight(uri, ["HF_TOKEN"], [out])
    assert out.is_dir() and list(out.iterdir()) == []
    assert any("registry" in p and "writable" in p for p in passed)
    assert any("opens" in p for p in passed) and len(passed) == 4
    assert leftover_probes(uri) == []


def test_real_server_with_credentials_passes(server: str, as_admin: None, tmp_path: Path) -> None:
    passed = preflight(server, ["MLFLOW_TRACKING_USERNAME"], [tmp_path], timeout_s=60)
    assert any("healthy" in p for p in passed)
    assert any("registry" in p and "writable" in p for p in passed)
    assert leftover_probes(server) == []


def test_a_plain_user_created_as_in_the_runbook_passes(server: str, monkeypatch, tmp_path: Path) -> None:
    """docs/cluster.md creates the pipeline's user with this API call; that user may write the registry."""
    token = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{server}/api/2.0/mlflow/users/create",
        data=json.dumps({"username": "hala-pipeline", "password": "pipeline-pw-12345"}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "hala-pipeline")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pipeline-pw-12345")
    passed = preflight(server, [], [tmp_path], timeout_s=60)
    assert any("registry" in p and "writable" in p for p in passed)


def test_real_server_refuses_bad_credentials(server: str, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password-123")
    with pytest.raises(PreflightError) as caught:
        preflight(server, [], [tmp_path], timeout_s=60)
    message = str(caught.value)
    assert "refused the credentials" in message and "hala-mlflow" in message
    assert "wrong-password-123" not in message


def test_real_server_refuses_a_host_not_in_allowed_hosts(server: str, as_admin: None, tmp_path: Path) -> None:
    other_name = server.replace("localhost", "127.0.0.1")  # same server, a Host it does not admit
    with pytest.raises(PreflightError) as caught:
        preflight(other_name, [], [tmp_path], check_registry=False, timeout_s=60)
    assert "--allowed-hosts" in str(caught.value)


def test_no_server_on_the_port_names_the_uri_and_the_secret(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(PreflightError) as caught:
        preflight(uri, [], [tmp_path], timeout_s=5)
    message = str(caught.value)
    assert f"{uri} does not answer" in message
    assert "hala-mlflow" in message and "rollout status" in message
    assert "1 problem(s)" in message, "the registry check is skipped when the server is down"
    assert time.monotonic() - started < 30


def _with_userinfo(uri: str, user: str, password: str) -> str:
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


def test_a_password_in_the_tracking_uri_is_never_printed(server: str, tmp_path: Path, monkeypatch) -> None:
    """Credentials in the URI authenticate; no passed line and no failure shows the password."""
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    good = _with_userinfo(server, ADMIN, ADMIN_PASSWORD)
    passed = preflight(good, [], [tmp_path], timeout_s=60)
    assert any("healthy" in p for p in passed) and any("registry" in p for p in passed)
    assert all(ADMIN_PASSWORD not in line for line in passed), passed
    assert any(f"{ADMIN}:***@localhost" in line for line in passed)

    failures = {
        "no server": _with_userinfo(f"http://127.0.0.1:{free_port()}", "u", "secret"),
        "wrong password": _with_userinfo(server, ADMIN, "secret"),
        "Host not admitted": _with_userinfo(server.replace("localhost", "127.0.0.1"), ADMIN, "secret"),
    }
    for case, uri in failures.items():
        with pytest.raises(PreflightError) as caught:
            preflight(uri, [], [tmp_path], timeout_s=60)
        assert "secret" not in str(caught.value), case
        assert ":***@" in str(caught.value), case


def test_mlflow_errors_that_quote_the_url_are_masked() -> None:
    """MLflow's client puts the whole URL, password included, in its connection errors."""
    from hala.preflight import _first_line

    error = RuntimeError("API request to http://u:secret@host:5000/api/2.0/x failed with exception boom")
    line = _first_line(error, "http://u:secret@host:5000")
    assert "secret" not in line and "http://u:***@host:5000/api/2.0/x" in line


def test_missing_env_and_unwritable_dir_are_all_reported(
    sqlite_uri: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-print-me")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    required = required_env_for(reads_hub=True, artifact_uri="s3://bucket/path")
    with pytest.raises(HalaError) as caught:
        preflight(sqlite_uri, required, [blocker / "out", tmp_path / "ok"])
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert "'HF_TOKEN', 'AWS_ACCESS_KEY_ID'" in message and "AWS_SECRET_ACCESS_KEY'" not in message
    assert "kubectl -n hala create secret generic hala-hf-token" in message
    assert "hala-object-store" in message
    assert f"{blocker / 'out'} is not writable" in message and "hala-work" in message
    assert "do-not-print-me" not in message


def test_required_env_follows_the_hub_and_the_artifact_store() -> None:
    assert required_env_for(reads_hub=False) == []
    assert required_env_for(reads_hub=True, artifact_uri="mlflow-artifacts:/x") == ["HF_TOKEN"]
    assert required_env_for(reads_hub=False, artifact_uri="s3://b", tracking_auth=True) == [
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ]


def _trl_template(name: str) -> str:
    from importlib import resources

    return resources.files("trl").joinpath(f"chat_templates/{name}.jinja").read_text(encoding="utf-8")


def _fanar_template() -> str:
    """QCRI/Fanar-1-9B-Instruct's own template, as far as it could be read (the fixture cites it)."""
    path = Path(__file__).parents[1] / "fixtures" / "chat_templates" / "fanar-1-9b-instruct.json"
    return str(json.loads(path.read_text(encoding="utf-8"))["chat_template_prefix"])


def test_sft_templates_trl_cannot_mask_fail_before_any_gpu(sqlite_uri: str, tmp_path: Path) -> None:
    """LFM2's own template and a marked one pass; a template TRL does not match byte for byte fails."""

    def hub_error() -> str:
        raise OSError("401 Client Error: gated repo")

    templates = {
        "LiquidAI/LFM2-1.2B@main": lambda: _trl_template("lfm2"),
        "LiquidAI/LFM2-1.2B@40f3da0": lambda: _trl_template("lfm2_v2"),
        "org/marked@main": lambda: _trl_template("lfm2_training"),
        # Fanar's real template (Gemma-2 turns, its own system and thinking roles): TRL 1.16 cannot mask it.
        "QCRI/Fanar-1-9B-Instruct@main": _fanar_template,
        "org/no-template@main": lambda: None,
        "org/gated@main": hub_error,
    }
    with pytest.raises(PreflightError) as caught:
        preflight(sqlite_uri, [], [tmp_path], check_registry=False, sft_templates=templates)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert (
        "SFT base model QCRI/Fanar-1-9B-Instruct@main: its chat template has no {% generation %}" in message
    )
    assert "set training.training_chat_template of the preset's training for QCRI/Fanar" in message
    assert "QCRI/Fanar-1-9B-Instruct: fanar1_training.jinja" in message
    assert "org/no-template@main ships no chat template" in message
    assert "org/gated@main could not be read: 401 Client Error" in message
    assert "LiquidAI" not in message and "org/marked" not in message

    passed = preflight(
        sqlite_uri,
        [],
        [tmp_path],
        check_registry=False,
        sft_templates={k: templates[k] for k in list(templates)[:3]},
    )
    assert (
        "SFT base model LiquidAI/LFM2-1.2B@main: assistant tokens masked through TRL's lfm2_training.jinja"
        in passed
    )
    assert (
        "SFT base model org/marked@main: assistant tokens masked through its own {% generation %} markers"
        in passed
    )


def test_a_presets_training_template_lets_fanar_pass_without_asking_the_hub(
    sqlite_uri: str, tmp_path: Path
) -> None:
    """training.training_chat_template names a marked copy: Fanar passes; a name not shipped fails."""

    def not_asked() -> str:
        raise AssertionError("the hub is not asked when the preset names a training template")

    fanar = "QCRI/Fanar-1-9B-Instruct@main"
    passed = preflight(
        sqlite_uri,
        [],
        [tmp_path],
        check_registry=False,
        sft_templates={fanar: not_asked},
        sft_training_templates={fanar: "fanar1_training.jinja"},
    )
    assert (
        f"SFT base model {fanar}: assistant tokens masked through the preset's "
        "training.training_chat_template fanar1_training.jinja" in passed
    )
    with pytest.raises(PreflightError) as caught:
        preflight(
            sqlite_uri,
            [],
            [tmp_path],
            check_registry=False,
            sft_templates={fanar: not_asked},
            sft_training_templates={fanar: "fanar.jinja"},
        )
    assert "training.training_chat_template 'fanar.jinja' is not a template in" in str(caught.value)
    assert "fanar1_training.jinja" in str(caught.value)


def test_preflight_stage_checks_every_non_tiny_sft_bases_template(
    sqlite_uri: str, tmp_path: Path, monkeypatch
) -> None:
    """The pipeline's first stage asks the hub for each SFT base's template (and only those)."""
    from hala import preflight as preflight_module
    from hala.config import load_preset
    from hala.stages import preflight as preflight_stage

    preset = load_preset("tiny")
    fanar = preset.students[next(iter(preset.students))].base.model_copy(
        update={"id": "QCRI/Fanar-1-9B-Instruct", "revision": "main"}
    )
    student = preset.students[next(iter(preset.students))].model_copy(update={"base": fanar})
    preset = preset.model_copy(update={"students": {"9b": student}})
    asked: list[tuple[str, str]] = []

    def fake_hub(model_id: str, revision: str) -> str:
        asked.append((model_id, revision))
        return _fanar_template()

    monkeypatch.setattr(preflight_module, "hub_chat_template", fake_hub)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with pytest.raises(PreflightError, match=r"SFT base model QCRI/Fanar-1-9B-Instruct@main"):
        settings = preflight_stage.settings(preset).model_copy(update={"work_root": str(tmp_path)})
        preflight_stage.run(settings)
    assert asked == [("QCRI/Fanar-1-9B-Instruct", "main")]


# --- the work volume: writable by the pipeline's uid, no fsGroup ---------------------------------------


def test_pipeline_uid_is_the_images_user() -> None:
    from hala.preflight import PIPELINE_UID
    from hala_components.images import RUN_AS_USER

    assert PIPELINE_UID == RUN_AS_USER


def test_work_root_probe_is_created_and_removed(tmp_path: Path) -> None:
    from hala.preflight import check_output_dir

    assert check_output_dir(tmp_path) == f"output folder {tmp_path} writable by uid {os.geteuid()}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any mode bits")
def test_a_read_only_work_root_is_an_error_naming_the_path(tmp_path: Path) -> None:
    from hala.preflight import CheckFailed, check_output_dir

    work = tmp_path / "hala-work"
    work.mkdir()
    work.chmod(0o555)
    try:
        with pytest.raises(CheckFailed) as caught:
            check_output_dir(work)
    finally:
        work.chmod(0o755)
    message = str(caught.value)
    assert f"output folder {work} is not writable by uid {os.geteuid()}" in message
    assert "PermissionError" in message and "mode dr-xr-xr-x" in message


def test_a_claim_root_the_pipeline_uid_cannot_write_says_how_to_fix_it(
    sqlite_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a task pod (uid 10001, no fsGroup) on a claim whose root belongs to root: simulated, so the
    test holds when it runs as root too."""
    from hala import preflight as preflight_module

    def refused(folder: Path) -> None:
        raise PermissionError(13, "Permission denied", str(folder / ".hala-preflight-x"))

    monkeypatch.setattr(preflight_module, "_probe_write", refused)
    monkeypatch.setattr(os, "geteuid", lambda: preflight_module.PIPELINE_UID)
    with pytest.raises(PreflightError) as caught:
        preflight(sqlite_uri, [], [tmp_path], check_registry=False)
    message = str(caught.value)
    assert f"output folder {tmp_path} is not writable by uid 10001" in message
    assert f"owner uid {tmp_path.stat().st_uid}" in message and "PermissionError" in message
    assert "hala-work claim" in message and "no fsGroup" in message
    assert "chown 10001:0" in message and "docs/cluster.md" in message and "storage class" in message
    assert "chown 10001 " not in message, "no local advice when running as the pipeline's uid"


def test_a_local_folder_another_uid_cannot_write_gets_a_local_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hala import preflight as preflight_module

    def refused(folder: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(preflight_module, "_probe_write", refused)
    monkeypatch.setattr(os, "geteuid", lambda: 1234)
    with pytest.raises(preflight_module.CheckFailed) as caught:
        preflight_module.check_output_dir(tmp_path)
    message = str(caught.value)
    assert "not writable by uid 1234" in message
    assert f"`chown 1234 {tmp_path}`" in message and "pipeline tasks run as uid 10001" in message
