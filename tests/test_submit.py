"""hala submit / schedule / runs: requests computed without a server, sent through kfp.Client.

Two doubles: a fake client that records calls (checked against kfp.Client's real signatures), and
the real kfp.Client with only its HTTP transport replaced, so kfp builds the actual requests.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kfp
import kfp_server_api
import pytest
import yaml

from hala.config import load_preset
from hala.errors import HalaError
from hala_pipelines import kfp_client as ops
from hala_pipelines.cli import _parser as hala_parser

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)

# GET /apis/v2beta1/healthz as the KFP API server writes it: kubeflow/pipelines
# backend/src/apiserver/main.go, healthzResponse (json tags commit_sha, tag_name, multi_user,
# pipeline_store with omitempty), commit 7b70c7b95f6832772efd6fd0029a4024491a0f44. Not the proto's
# GetHealthzResponse (backend/api/v2beta1/healthz.proto: multi_user = 3, pipeline_store = 4 only).
API_SERVER_HEALTHZ = {
    "commit_sha": "4a3592cb2dd0a91a4652ab93893ec8beda1f3158",  # the commit of tag 2.17.0
    "tag_name": "2.17.0",
    "multi_user": False,
    "pipeline_store": "database",
}
# The same path through ml-pipeline-ui (port-forward, Kubeflow gateway): the UI server's HealthzStats,
# frontend/server/handlers/healthz.ts (getHealthzHandler, getBuildMetadata), same commit.
UI_SERVER_HEALTHZ = {
    "buildDate": "Tue Oct  7 19:01:55 UTC 2025",
    "frontendCommitHash": "8fe8d7bdd88f027bde080f619762a0b3294796db",
    "frontendTagName": "2.15.0",
    "apiServerReady": True,
    "apiServerCommitHash": "8fe8d7bdd88f027bde080f619762a0b3294796db",  # the commit of tag 2.15.0
    "apiServerTagName": "2.15.0",
    "apiServerMultiUser": True,
    "multi_user": True,
    "pipelineStore": "database",
}


def _parser() -> argparse.ArgumentParser:
    return hala_parser()


class FakeHealthz:
    """kfp.Client's generated healthz API: answers the raw response asked for with _preload_content=False."""

    def __init__(self, body: dict[str, Any], status: int = 200) -> None:
        self.body, self.status = body, status
        self.calls: list[dict[str, Any]] = []

    def healthz_service_get_healthz(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        assert kwargs.get("_preload_content") is False, "the parsed model drops tag_name"
        return SimpleNamespace(status=self.status, data=json.dumps(self.body).encode())


class FakeKfp:
    """Records each call; fails when an argument does not fit kfp.Client's signature of that method."""

    def __init__(self, existing_pipeline: str | None = None, healthz: FakeHealthz | None = None) -> None:
        self.existing = existing_pipeline
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.packages: list[str] = []
        self._healthz_api = healthz or FakeHealthz(API_SERVER_HEALTHZ)  # kfp.Client's attribute name

    def _record(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = inspect.signature(getattr(kfp.Client, method)).bind(None, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop("self")
        self.calls.append((method, arguments))
        return arguments

    def get_pipeline_id(self, *args: Any, **kwargs: Any) -> str | None:
        self._record("get_pipeline_id", *args, **kwargs)
        return self.existing

    def upload_pipeline(self, *args: Any, **kwargs: Any) -> Any:
        arguments = self._record("upload_pipeline", *args, **kwargs)
        self.packages.append(Path(arguments["pipeline_package_path"]).read_text())
        return SimpleNamespace(pipeline_id="pipe-new")

    def list_pipeline_versions(self, *args: Any, **kwargs: Any) -> Any:
        self._record("list_pipeline_versions", *args, **kwargs)
        return SimpleNamespace(pipeline_versions=[SimpleNamespace(pipeline_version_id="ver-first")])

    def upload_pipeline_version(self, *args: Any, **kwargs: Any) -> Any:
        arguments = self._record("upload_pipeline_version", *args, **kwargs)
        self.packages.append(Path(arguments["pipeline_package_path"]).read_text())
        return SimpleNamespace(pipeline_version_id="ver-2", pipeline_id=arguments["pipeline_id"])

    def create_experiment(self, *args: Any, **kwargs: Any) -> Any:
        self._record("create_experiment", *args, **kwargs)
        return SimpleNamespace(experiment_id="exp-1")

    def run_pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self._record("run_pipeline", *args, **kwargs)
        return SimpleNamespace(run_id="run-1")

    def create_recurring_run(self, *args: Any, **kwargs: Any) -> Any:
        self._record("create_recurring_run", *args, **kwargs)
        return SimpleNamespace(recurring_run_id="rec-1")

    def list_runs(self, *args: Any, **kwargs: Any) -> Any:
        self._record("list_runs", *args, **kwargs)
        run = SimpleNamespace(run_id="r-9", display_name="hala-nano-x", state="SUCCEEDED", created_at=NOW)
        return SimpleNamespace(runs=[run])


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hala_pipelines.compile import compile_preset

    return compile_preset("tiny", tmp_path_factory.mktemp("pkg") / "tiny.yaml")


def test_plan_names_follow_the_preset() -> None:
    preset = load_preset("tiny")
    plan = ops.plan_submit(preset, now=NOW)
    assert plan.pipeline_name == "hala-tiny"
    assert plan.version_name == f"hala-tiny-{preset.fingerprint()[:12]}-20260304-050607"
    assert plan.experiment == "hala-tiny"  # the preset's tracking.experiment
    assert plan.run_name == "hala-tiny-20260304-050607"
    assert plan.params == {"run_name": "hala-tiny-20260304-050607"}  # MLflow parent run gets the same name
    named = ops.plan_submit(preset, experiment="ops", run_name="try-1", version_name="v7", now=NOW)
    assert (named.experiment, named.run_name, named.version_name) == ("ops", "try-1", "v7")
    assert named.params == {"run_name": "try-1"}


@pytest.mark.parametrize(
    "expr",
    ["0 0 2 * * *", "0 30 1 * * SUN", "0 */15 * * * ?", "0 0 0 1,15 JAN-JUN MON-FRI", "@daily", "@every 6h"],
)
def test_valid_cron_expressions(expr: str) -> None:
    assert ops.validate_cron(f"  {expr} ") == expr


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("0 2 * * *", "has 5 field(s)"),  # the usual 5-field crontab: KFP wants seconds first
        ("0 60 2 * * *", "field minute '60'"),
        ("0 0 24 * * *", "field hour '24'"),
        ("0 0 0 0 * *", "field day-of-month '0'"),
        ("0 0 0 * 13 *", "field month '13'"),
        ("0 0 0 * * 7", "field day-of-week '7'"),
        ("0 0 0 ? * *x", "field day-of-week"),
        ("0 0 */0 * * *", "field hour"),
        ("", "has 0 field(s)"),
        ("@every day", "has 2 field(s)"),
    ],
)
def test_invalid_cron_says_the_format(expr: str, says: str) -> None:
    with pytest.raises(ops.CronError) as err:
        ops.validate_cron(expr)
    assert says in str(err.value)
    assert "second minute hour day-of-month month day-of-week" in str(err.value)


def test_run_link() -> None:
    assert ops.kfp_run_link("https://kf.example.com/pipeline/", "abc") == (
        "https://kf.example.com/pipeline/#/runs/details/abc"
    )


def test_submit_new_pipeline(tiny_package: Path) -> None:
    plan = ops.plan_submit(load_preset("tiny"), namespace="team-a", now=NOW)
    fake = FakeKfp(existing_pipeline=None)
    done = ops.submit(fake, tiny_package, plan)
    assert done == ops.Submitted("pipe-new", "ver-first", "exp-1", "run-1")
    assert [name for name, _ in fake.calls] == [
        "get_pipeline_id",
        "upload_pipeline",
        "list_pipeline_versions",
        "create_experiment",
        "run_pipeline",
    ]
    calls = dict(fake.calls)
    assert calls["get_pipeline_id"] == {"name": "hala-tiny"}
    assert calls["upload_pipeline"] == {
        "pipeline_package_path": str(tiny_package),
        "pipeline_name": "hala-tiny",
        "description": plan.description,
        "namespace": "team-a",
    }
    assert calls["list_pipeline_versions"] == {
        "pipeline_id": "pipe-new",
        "page_size": 1,
        "sort_by": "created_at desc",
    }
    assert calls["create_experiment"] == {"name": "hala-tiny", "namespace": "team-a"}
    assert calls["run_pipeline"] == {
        "experiment_id": "exp-1",
        "job_name": "hala-tiny-20260304-050607",
        "params": {"run_name": "hala-tiny-20260304-050607"},
        "pipeline_id": "pipe-new",
        "version_id": "ver-first",
    }


def test_submit_existing_pipeline_uploads_a_version(tiny_package: Path) -> None:
    plan = ops.plan_submit(load_preset("tiny"), version_name="v-2", run_name="r", now=NOW)
    fake = FakeKfp(existing_pipeline="pipe-7")
    done = ops.submit(fake, tiny_package, plan)
    assert done == ops.Submitted("pipe-7", "ver-2", "exp-1", "run-1")
    assert [name for name, _ in fake.calls] == [
        "get_pipeline_id",
        "upload_pipeline_version",
        "create_experiment",
        "run_pipeline",
    ]
    assert dict(fake.calls)["upload_pipeline_version"] == {
        "pipeline_package_path": str(tiny_package),
        "pipeline_version_name": "v-2",
        "pipeline_id": "pipe-7",
        "description": plan.description,
    }
    assert dict(fake.calls)["run_pipeline"]["version_id"] == "ver-2"


def test_schedule_creates_a_recurring_run(tiny_package: Path) -> None:
    plan = ops.plan_submit(load_preset("tiny"), run_name="nightly", now=NOW)
    fake = FakeKfp(existing_pipeline="pipe-7")
    done = ops.schedule(fake, tiny_package, plan, "0 0 2 * * *", max_concurrency=1, catchup=False)
    assert done.run_id == "rec-1"
    assert dict(fake.calls)["create_recurring_run"] == {
        "experiment_id": "exp-1",
        "job_name": "nightly",
        "description": plan.description,
        "cron_expression": "0 0 2 * * *",
        "max_concurrency": 1,
        "no_catchup": True,
        "params": {"run_name": "nightly"},
        "pipeline_id": "pipe-7",
        "version_id": "ver-2",
    }


def test_schedule_refuses_a_bad_cron_before_uploading(tiny_package: Path) -> None:
    fake = FakeKfp()
    with pytest.raises(ops.CronError):
        ops.schedule(
            fake,
            tiny_package,
            ops.plan_submit(load_preset("tiny")),
            "0 2 * * *",
            max_concurrency=1,
            catchup=False,
        )
    assert fake.calls == []


# The CLI compiles the whole pipeline in-process (about 11 s each): the component tier, as test_compile.
COMPILES = pytest.mark.component


@COMPILES
def test_cli_submit_compiles_the_preset_and_prints_the_link(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKfp(existing_pipeline=None)
    seen: list[ops.Connection] = []

    def connect(conn: ops.Connection) -> FakeKfp:
        seen.append(conn)
        return fake

    monkeypatch.setattr(ops, "connect", connect)
    monkeypatch.delenv(ops.UI_HOST_ENV, raising=False)
    args = _parser().parse_args(
        [
            "submit",
            "--preset",
            "tiny",
            "--host",
            "http://kfp.example:8080",
            "--existing-token",
            "t0k",
            "--run-name",
            "r1",
            "--set",
            "merge.t=0.4",
        ]
    )
    assert args.func(args) == 0
    assert seen == [ops.Connection(host="http://kfp.example:8080", namespace=None, token="t0k")]
    spec = next(yaml.safe_load_all(fake.packages[0]))
    assert spec["pipelineInfo"]["name"] == "hala-tiny"
    # the preset compiled in is tiny with --set applied: its fingerprint and the run parameter's default
    merged = load_preset("tiny").model_copy(
        update={"merge": load_preset("tiny").merge.model_copy(update={"t": 0.4})}
    )
    assert spec["pipelineInfo"]["description"].endswith(
        f"(compiled preset fingerprint {merged.fingerprint()})"
    )
    assert spec["root"]["inputDefinitions"]["parameters"]["merge_t"]["defaultValue"] == 0.4
    out = capsys.readouterr().out
    assert "http://kfp.example:8080/#/runs/details/run-1" in out
    assert "t0k" not in out


@COMPILES
def test_cli_schedule_and_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeKfp(existing_pipeline="pipe-7")
    monkeypatch.setattr(ops, "connect", lambda conn: fake)
    args = _parser().parse_args(
        ["schedule", "--preset", "tiny", "--cron", "0 0 3 * * MON", "--max-concurrency", "2", "--catchup"]
    )
    assert args.func(args) == 0
    rec = dict(fake.calls)["create_recurring_run"]
    assert (rec["cron_expression"], rec["max_concurrency"], rec["no_catchup"]) == ("0 0 3 * * MON", 2, False)
    assert _parser().parse_args(["schedule", "--preset", "tiny", "--cron", "@daily"]).catchup is False

    args = _parser().parse_args(["runs", "--limit", "5", "--namespace", "team-a"])
    assert args.func(args) == 0
    assert fake.calls[-1] == (
        "list_runs",
        {"page_size": 5, "sort_by": "created_at desc", "namespace": "team-a"},
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split() == ["RUN", "ID", "STATE", "CREATED", "NAME"]
    assert lines[-1].split() == ["r-9", "SUCCEEDED", NOW.isoformat(), "hala-nano-x"]


def test_cli_schedule_bad_cron_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "connect", lambda conn: pytest.fail("must not connect"))
    args = _parser().parse_args(["schedule", "--preset", "tiny", "--cron", "0 2 * * *"])
    with pytest.raises(HalaError, match="6 fields"):
        args.func(args)


# --- the real kfp.Client, its HTTP transport replaced ------------------------------------------------------


class _Response:
    def __init__(self, payload: dict[str, Any]) -> None:
        self.status, self.reason, self.data = 200, "OK", json.dumps(payload).encode()

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return "application/json" if name.lower() == "content-type" else default

    def getheaders(self) -> dict[str, str]:
        return {"content-type": "application/json"}


class Server:
    """Answers kfp's requests like a KFP v2beta1 API server with one pipeline and no experiment."""

    def __init__(self, healthz: dict[str, Any] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.healthz = API_SERVER_HEALTHZ if healthz is None else healthz

    def __call__(self, method: str, url: str, **kw: Any) -> _Response:
        path = url.removeprefix("http://kfp.test")
        self.requests.append({"method": method, "path": path, **kw})
        answers = {
            ("GET", "/apis/v2beta1/healthz"): self.healthz,
            ("GET", "/apis/v2beta1/pipelines"): {
                "pipelines": [{"pipeline_id": "p-1", "display_name": "hala-tiny"}]
            },
            ("POST", "/apis/v2beta1/pipelines/upload_version"): {
                "pipeline_id": "p-1",
                "pipeline_version_id": "v-9",
            },
            ("GET", "/apis/v2beta1/experiments"): {},
            ("POST", "/apis/v2beta1/experiments"): {"experiment_id": "e-1", "display_name": "hala-tiny"},
            ("POST", "/apis/v2beta1/runs"): {"run_id": "r-1", "display_name": "x"},
        }
        return _Response(answers[(method, path)])


def _real_client(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A real kfp.Client whose HTTP requests ``server`` answers."""
    monkeypatch.setattr(
        kfp_server_api.ApiClient, "request", lambda _api, method, url, **kw: server(method, url, **kw)
    )
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))
    monkeypatch.setenv(ops.TOKEN_ENV, "s3cret")
    return ops.connect(ops.Connection(host="http://kfp.test"))


def test_real_kfp_client_builds_these_requests(
    tiny_package: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = Server()
    client = _real_client(server, monkeypatch, tmp_path)
    assert ops.check_backend(client) is None  # tag_name 2.17.0, read from the unparsed body
    plan = ops.plan_submit(load_preset("tiny"), version_name="v-9", run_name="r", namespace="team-a", now=NOW)
    assert ops.submit(client, tiny_package, plan) == ops.Submitted("p-1", "v-9", "e-1", "r-1")

    by_route = {(r["method"], r["path"]): r for r in server.requests}
    assert list(by_route) == [
        ("GET", "/apis/v2beta1/healthz"),
        ("GET", "/apis/v2beta1/pipelines"),
        ("POST", "/apis/v2beta1/pipelines/upload_version"),
        ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/runs"),
    ]
    assert all(r["headers"].get("authorization") == "Bearer s3cret" for r in server.requests)

    lookup = json.loads(dict(by_route[("GET", "/apis/v2beta1/pipelines")]["query_params"])["filter"])
    assert lookup["predicates"][0] == {
        "operation": 1,  # EQUALS in the v2beta1 filter proto
        "key": "display_name",
        "stringValue": "hala-tiny",
    }

    upload = by_route[("POST", "/apis/v2beta1/pipelines/upload_version")]
    assert dict(upload["query_params"]) == {
        "name": "v-9",
        "pipelineid": "p-1",
        "description": plan.description,
    }
    (field, (filename, content, _mime)), *_ = upload["post_params"]
    assert (field, filename) == ("uploadfile", tiny_package.name)
    assert content == tiny_package.read_bytes()

    find = dict(by_route[("GET", "/apis/v2beta1/experiments")]["query_params"])
    assert find["namespace"] == "team-a"
    assert json.loads(find["filter"])["predicates"][0]["stringValue"] == "hala-tiny"
    assert by_route[("POST", "/apis/v2beta1/experiments")]["body"] == {
        "display_name": "hala-tiny",
        "namespace": "team-a",
    }
    run = by_route[("POST", "/apis/v2beta1/runs")]["body"]
    assert run == {
        "experiment_id": "e-1",
        "display_name": "r",
        "pipeline_version_reference": {"pipeline_id": "p-1", "pipeline_version_id": "v-9"},
        "runtime_config": {"parameters": {"run_name": "r"}},
    }


def test_real_kfp_client_reads_the_ui_servers_healthz_and_refuses_2_15(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = Server(healthz=UI_SERVER_HEALTHZ)
    client = _real_client(server, monkeypatch, tmp_path)
    with pytest.raises(ops.KfpError, match=r"backend 2\.15\.0 is older than 2\.17\.0"):
        ops.check_backend(client)
    healthz = [r for r in server.requests if r["path"] == ops.HEALTHZ_PATH]
    assert healthz and all(r["headers"].get("authorization") == "Bearer s3cret" for r in healthz)
    assert {r["path"] for r in server.requests} == {ops.HEALTHZ_PATH}, "nothing but healthz was asked"


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("2.17.0", (2, 17, 0)),
        ("v2.18.1", (2, 18, 1)),
        ("2.17", (2, 17, 0)),
        ("2.17.0-rc.1", (2, 17, 0)),
        ("2.15.0", (2, 15, 0)),
        ("master", None),
        ("unknown", None),  # the API server's default when the image has no TAG_NAME
        ("dev", None),
        ("", None),
        (None, None),
    ],
)
def test_backend_version_parsing(tag: str | None, version: tuple[int, int, int] | None) -> None:
    assert ops.parse_backend_version(tag) == version


def test_backend_from_either_healthz_shape() -> None:
    assert ops.backend_from_healthz(API_SERVER_HEALTHZ) == ops.Backend(
        "2.17.0", "4a3592cb2dd0a91a4652ab93893ec8beda1f3158"
    )
    assert ops.backend_from_healthz(UI_SERVER_HEALTHZ).version == (2, 15, 0)
    assert ops.backend_from_healthz({"multi_user": False}) == ops.Backend(None, None)


def test_a_recent_backend_passes_silently() -> None:
    newer = FakeHealthz({**API_SERVER_HEALTHZ, "tag_name": "2.18.0"})
    assert ops.check_backend(FakeKfp(healthz=newer)) is None
    assert ops.check_backend(FakeKfp()) is None


def test_an_old_backend_is_refused_naming_the_version_needed() -> None:
    old = FakeKfp(healthz=FakeHealthz({**API_SERVER_HEALTHZ, "tag_name": "2.15.0"}))
    with pytest.raises(ops.KfpError) as err:
        ops.check_backend(old)
    message = str(err.value)
    assert "backend 2.15.0 is older than 2.17.0" in message
    assert "#12782" in message and "#13322" in message and "--allow-old-backend" in message
    assert "nothing was uploaded" in message
    warning = ops.check_backend(old, allow_old=True)
    assert warning is not None and "uploading anyway (--allow-old-backend)" in warning


@pytest.mark.parametrize("tag", ["master", "unknown", "dev", None])
def test_a_backend_without_a_release_version_warns_and_goes_on(tag: str | None) -> None:
    body = {k: v for k, v in API_SERVER_HEALTHZ.items() if k != "tag_name"}
    fake = FakeKfp(healthz=FakeHealthz(body if tag is None else {**body, "tag_name": tag}))
    warning = ops.check_backend(fake)
    assert warning is not None
    assert "reports no release version" in warning and "2.17.0" in warning and "going on" in warning


def test_an_unreadable_healthz_is_refused_unless_allowed() -> None:
    fake = FakeKfp(healthz=FakeHealthz({"error": "not found"}, status=404))
    with pytest.raises(ops.KfpError, match=r"answered HTTP 404.*--allow-old-backend"):
        ops.check_backend(fake)
    warning = ops.check_backend(fake, allow_old=True)
    assert warning is not None and "HTTP 404" in warning


@pytest.mark.parametrize("command", [["submit"], ["schedule", "--cron", "@daily"]])
def test_cli_refuses_an_old_backend_before_compiling_or_uploading(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKfp(healthz=FakeHealthz(UI_SERVER_HEALTHZ))  # 2.15.0, as Kubeflow 1.11 ships
    monkeypatch.setattr(ops, "connect", lambda conn: fake)
    monkeypatch.setattr(ops, "compile_preset_package", lambda preset: pytest.fail("must not compile"))
    args = _parser().parse_args([*command, "--preset", "tiny"])
    with pytest.raises(HalaError, match=r"2\.15\.0 is older than 2\.17\.0"):
        args.func(args)
    assert fake.calls == [], "nothing is uploaded"
    assert len(fake._healthz_api.calls) == 1


@COMPILES
def test_cli_allow_old_backend_warns_and_submits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKfp(existing_pipeline="pipe-7", healthz=FakeHealthz(UI_SERVER_HEALTHZ))
    monkeypatch.setattr(ops, "connect", lambda conn: fake)
    args = _parser().parse_args(["submit", "--preset", "tiny", "--allow-old-backend"])
    assert args.func(args) == 0
    assert "run_pipeline" in dict(fake.calls)
    err = capsys.readouterr().err
    assert "warning: Kubeflow Pipelines backend 2.15.0 is older than 2.17.0" in err


@COMPILES
def test_cli_dev_backend_warns_and_submits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKfp(healthz=FakeHealthz({**API_SERVER_HEALTHZ, "tag_name": "master"}))
    monkeypatch.setattr(ops, "connect", lambda conn: fake)
    args = _parser().parse_args(["schedule", "--preset", "tiny", "--cron", "@daily"])
    assert args.func(args) == 0
    assert "create_recurring_run" in dict(fake.calls)
    assert "reports no release version (tag 'master'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["submit", "schedule", "runs", "promote", "models", "rerun"])
def test_every_ops_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        _parser().parse_args([command, "--help"])
    assert done.value.code == 0
    assert f"usage: hala {command}" in capsys.readouterr().out


def test_registering_the_ops_commands_stays_light() -> None:
    """`hala --help` must not pay for importing mlflow or kfp (seconds) because ops commands exist."""
    code = "import sys, hala_pipelines.cli; print(sorted(m for m in ('mlflow', 'kfp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
