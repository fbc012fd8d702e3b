"""hala promote / models against a real MLflow server on loopback (sqlite store, proxied artifacts)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pg_server import start_server, stop_server, wait_healthy

from hala import registry
from hala.errors import HalaError
from hala.ops import promotion
from hala.ops.cli import register

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    command = [
        *(str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}"),
        *("--artifacts-destination", str(root / "artifacts")),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    process = start_server(command, dict(os.environ), root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, root / "server.log", timeout_s=300)  # minutes on a loaded 2-core machine
        yield url
    finally:
        stop_server(process)


@pytest.fixture
def client(server: str) -> MlflowClient:
    return MlflowClient(tracking_uri=server)


_models = iter(range(1000))


def _register(client: MlflowClient, verdicts: list[str | None], reasons: list[str] | None = None) -> str:
    """A new registered model with one version per verdict (None: no verdict tag); returns its name."""
    name = f"hala-test-{next(_models)}"
    client.create_registered_model(name)
    experiment = client.get_experiment_by_name("registry-tests")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("registry-tests")
    for i, verdict in enumerate(verdicts):
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, "eval.average", 0.25 + i / 10)
        mv = client.create_model_version(
            name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
        )
        client.set_model_version_tag(name, mv.version, "translation.chrf", f"{40 + i}")
        if verdict is not None:
            client.set_model_version_tag(name, mv.version, registry.TAG_GATE_VERDICT, verdict)
            client.set_model_version_tag(
                name, mv.version, registry.TAG_GATE_REASONS, json.dumps(reasons or [])
            )
    return name


def _hala(server: str, *words: str) -> int:
    parser = argparse.ArgumentParser(prog="hala")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*words, "--tracking-uri", server])
    return int(args.func(args))


def _champion(client: MlflowClient, model: str) -> str | None:
    return client.get_registered_model(model).aliases.get(registry.CHAMPION_ALIAS)


def _tags(client: MlflowClient, model: str, version: str) -> dict[str, str]:
    return dict(client.get_model_version(model, version).tags)


def test_promote_a_passing_version(
    server: str, client: MlflowClient, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _register(client, ["pass"])
    before = datetime.now().astimezone()
    assert _hala(server, "promote", model, "1", "--to", "champion", "--actor", "alice") == 0
    assert _champion(client, model) == "1"
    tags = _tags(client, model, "1")
    assert tags[registry.TAG_PROMOTION_ALIAS] == "champion"
    assert tags[registry.TAG_PROMOTION_ACTOR] == "alice"
    assert tags[registry.TAG_PROMOTION_KIND] == "promote"
    assert tags[registry.TAG_PROMOTION_FORCED] == "false"
    assert tags[registry.TAG_PROMOTION_PREVIOUS] == ""
    assert tags[registry.TAG_PROMOTION_REASON] == "gate verdict pass"
    when = datetime.fromisoformat(tags[registry.TAG_PROMOTION_TIME])
    assert when.utcoffset() == timedelta(0)
    assert abs((when - before).total_seconds()) < 60
    assert f"'champion' of {model}: nothing -> version 1, by alice" in capsys.readouterr().out


def test_promote_a_failing_version_is_refused(server: str, client: MlflowClient) -> None:
    model = _register(client, ["pass", "fail"], reasons=["eval.average 0.31 < 0.40", "chrF dropped 3.1"])
    assert _hala(server, "promote", model, "1", "--actor", "alice") == 0
    with pytest.raises(HalaError) as err:
        _hala(server, "promote", model, "2", "--actor", "alice")
    message = str(err.value)
    assert f"version 2 of {model} has gate verdict 'fail'" in message
    assert "eval.average 0.31 < 0.40; chrF dropped 3.1" in message
    assert "--force --reason" in message
    assert _champion(client, model) == "1"
    assert registry.TAG_PROMOTION_ACTOR not in _tags(client, model, "2")


def test_a_version_without_a_verdict_is_refused(server: str, client: MlflowClient) -> None:
    model = _register(client, [None])
    with pytest.raises(HalaError, match=f"version 1 of {model} has no gate verdict"):
        _hala(server, "promote", model, "1", "--actor", "alice")
    assert _champion(client, model) is None


def test_force_needs_a_reason(server: str, client: MlflowClient) -> None:
    model = _register(client, ["fail"])
    with pytest.raises(HalaError, match="--force needs --reason of at least 20 characters"):
        _hala(server, "promote", model, "1", "--force", "--actor", "alice")
    with pytest.raises(HalaError, match=r"\(got 5\)"):
        _hala(server, "promote", model, "1", "--force", "--reason", "hotfx", "--actor", "alice")
    assert _champion(client, model) is None


def test_force_with_a_reason_promotes_and_records_it(server: str, client: MlflowClient) -> None:
    model = _register(client, ["pass", "fail"])
    assert _hala(server, "promote", model, "1", "--actor", "alice") == 0
    reason = "gate metric misconfigured, see INC-42; manual eval ok"
    assert _hala(server, "promote", model, "2", "--force", "--reason", reason, "--actor", "bob") == 0
    assert _champion(client, model) == "2"
    tags = _tags(client, model, "2")
    assert tags[registry.TAG_PROMOTION_REASON] == reason
    assert tags[registry.TAG_PROMOTION_FORCED] == "true"
    assert tags[registry.TAG_PROMOTION_ACTOR] == "bob"
    assert tags[registry.TAG_PROMOTION_PREVIOUS] == "1"


def test_rollback_restores_previous_champions_in_turn(
    server: str, client: MlflowClient, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _register(client, ["pass", "pass", "pass"])
    for version in ("1", "2", "3"):
        assert _hala(server, "promote", model, version, "--actor", "alice") == 0
    assert (
        _hala(server, "promote", model, "--rollback", "--actor", "carol", "--reason", "regression in prod")
        == 0
    )
    assert _champion(client, model) == "2"
    assert f"rolled back 'champion' of {model}: version 3 -> 2" in capsys.readouterr().out
    tags = _tags(client, model, "2")
    assert tags[registry.TAG_PROMOTION_KIND] == "rollback"
    assert tags[registry.TAG_PROMOTION_PREVIOUS] == "3"
    assert tags[registry.TAG_PROMOTION_ACTOR] == "carol"
    assert tags[registry.TAG_PROMOTION_REASON] == "regression in prod"

    assert _hala(server, "promote", model, "--rollback", "--actor", "carol") == 0
    assert _champion(client, model) == "1"
    with pytest.raises(HalaError, match="nothing to restore"):
        _hala(server, "promote", model, "--rollback", "--actor", "carol")
    assert _champion(client, model) == "1"

    history = json.loads(
        client.get_registered_model(model).tags[registry.TAG_PROMOTION_HISTORY_PREFIX + "champion"]
    )
    assert [(e["kind"], e["version"], e["previous"]) for e in history] == [
        ("promote", "1", ""),
        ("promote", "2", "1"),
        ("promote", "3", "2"),
        ("rollback", "2", "3"),
        ("rollback", "1", "2"),
    ]


def test_rollback_refuses_when_the_alias_was_moved_by_hand(server: str, client: MlflowClient) -> None:
    model = _register(client, ["pass", "pass", "pass"])
    assert _hala(server, "promote", model, "1", "--actor", "alice") == 0
    assert _hala(server, "promote", model, "2", "--actor", "alice") == 0
    client.set_registered_model_alias(model, "champion", "3")
    with pytest.raises(HalaError, match="moved outside `hala promote`"):
        _hala(server, "promote", model, "--rollback", "--actor", "alice")
    assert _champion(client, model) == "3"


def test_promoting_the_champion_again_changes_nothing(
    server: str, client: MlflowClient, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _register(client, ["pass"])
    assert _hala(server, "promote", model, "1", "--actor", "alice") == 0
    assert _hala(server, "promote", model, "1", "--actor", "bob") == 0
    assert "already 'champion'" in capsys.readouterr().out
    assert _tags(client, model, "1")[registry.TAG_PROMOTION_ACTOR] == "alice"


def test_unknown_model_version_and_alias(server: str, client: MlflowClient) -> None:
    model = _register(client, ["pass"])
    with pytest.raises(HalaError, match="no registered model 'hala-nope'"):
        _hala(server, "promote", "hala-nope", "1", "--actor", "alice")
    with pytest.raises(HalaError, match=f"model '{model}' has no version 9"):
        _hala(server, "promote", model, "9", "--actor", "alice")
    with pytest.raises(
        HalaError, match=r"alias 'candidate' is not promotable; the policy allows \['champion'\]"
    ):
        _hala(server, "promote", model, "1", "--to", "candidate", "--actor", "alice")


def test_version_arguments_are_validated(server: str, client: MlflowClient) -> None:
    model = _register(client, ["pass"])
    for bad in ("abc", "0", "-1", "1.5", ""):
        with pytest.raises(HalaError, match=r"is not a model version: pass its number"):
            _hala(server, "promote", model, bad, "--actor", "alice")
    assert _hala(server, "promote", model, "01", "--actor", "alice") == 0  # 01 is version 1
    assert _champion(client, model) == "1"
    assert [e.version for e in promotion.history(client, model, "champion")] == ["1"]


def test_a_reason_too_long_moves_nothing(server: str, client: MlflowClient) -> None:
    model = _register(client, ["pass", "fail"])
    assert _hala(server, "promote", model, "1", "--actor", "alice") == 0
    with pytest.raises(HalaError, match=r"--reason is 5000 characters; keep it to 500"):
        _hala(server, "promote", model, "2", "--force", "--reason", "x" * 5000, "--actor", "alice")
    assert _champion(client, model) == "1"
    assert [e.version for e in promotion.history(client, model, "champion")] == ["1"]


def test_a_failed_history_write_puts_the_alias_back(
    server: str, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moving the alias, tagging the version and the history are one step."""
    model = _register(client, ["pass", "pass"])
    policy = promotion.load_policy()
    promotion.promote(client, policy, model, "1", alias="champion", actor="alice")

    def refuse(*args: object, **kwargs: object) -> None:
        raise MlflowException("value too long for type character varying(5000)")

    monkeypatch.setattr(client, "set_model_version_tag", refuse)
    with pytest.raises(MlflowException, match="value too long"):
        promotion.promote(client, policy, model, "2", alias="champion", actor="alice")
    monkeypatch.undo()
    assert _champion(client, model) == "1"
    assert [e.version for e in promotion.history(client, model, "champion")] == ["1"]
    promotion.promote(client, policy, model, "2", alias="champion", actor="alice")
    assert promotion.rollback(client, policy, model, alias="champion", actor="alice").version == "1"


def _fail_on_tag(client: MlflowClient, monkeypatch: pytest.MonkeyPatch, failing_key: str) -> list[str]:
    """Let version-tag writes through until ``failing_key`` is written once; that one write fails."""
    real = client.set_model_version_tag
    written: list[str] = []

    def set_tag(name: str, version: str, key: str, value: str) -> None:
        if key == failing_key and failing_key not in written:
            written.append(key)
            raise MlflowException("value too long for type character varying(5000)")
        written.append(key)
        real(name, version, key, value)

    monkeypatch.setattr(client, "set_model_version_tag", set_tag)
    return written


def test_a_failed_later_version_tag_leaves_the_versions_tags_as_they_were(
    server: str, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags written before the failing one are deleted (a fresh version) or set back (a former champion)."""
    model = _register(client, ["pass", "pass"])
    policy = promotion.load_policy()
    promotion.promote(client, policy, model, "1", alias="champion", actor="alice")

    fresh = _tags(client, model, "2")
    written = _fail_on_tag(client, monkeypatch, registry.TAG_PROMOTION_REASON)
    with pytest.raises(MlflowException, match="value too long"):
        promotion.promote(client, policy, model, "2", alias="champion", actor="bob")
    monkeypatch.undo()
    assert written[:3] == [
        registry.TAG_PROMOTION_ALIAS,
        registry.TAG_PROMOTION_ACTOR,
        registry.TAG_PROMOTION_TIME,
    ]
    assert _tags(client, model, "2") == fresh
    assert not any(k.startswith("hala.promotion.") for k in _tags(client, model, "2"))
    assert _champion(client, model) == "1"

    # Version 2 once held the alias: its promotion tags come back with their old values.
    promotion.promote(client, policy, model, "2", alias="champion", actor="alice", reason="first")
    promotion.rollback(client, policy, model, alias="champion", actor="alice")
    former = _tags(client, model, "2")
    assert former[registry.TAG_PROMOTION_ACTOR] == "alice"
    _fail_on_tag(client, monkeypatch, registry.TAG_PROMOTION_KIND)
    with pytest.raises(MlflowException, match="value too long"):
        promotion.promote(client, policy, model, "2", alias="champion", actor="bob", reason="second")
    monkeypatch.undo()
    assert _tags(client, model, "2") == former
    assert _champion(client, model) == "1"
    assert [e.version for e in promotion.history(client, model, "champion")] == ["1", "2", "1"]


def test_the_history_stays_within_the_postgresql_tag_limit() -> None:
    """The newest events that fit in registered_model_tags.value (VARCHAR(5000) on PostgreSQL)."""
    events = [
        promotion.PromotionEvent(
            "champion", str(i), "", "ci-bot", "2026-01-01T00:00:00+00:00", "r" * 400, False, "promote"
        )
        for i in range(1, 201)
    ]
    kept = json.loads(promotion.history_json(events, limit=1000))
    assert len(json.dumps(kept)) <= promotion.HISTORY_MAX_CHARS
    assert [e["version"] for e in kept] == [str(i) for i in range(201 - len(kept), 201)]  # the newest
    one_more = json.dumps([asdict(events[-len(kept) - 1]), *kept])
    assert len(one_more) > promotion.HISTORY_MAX_CHARS  # as many as fit, not fewer
    assert len(json.loads(promotion.history_json(events, limit=3))) == 3


def test_actor_is_required(server: str, client: MlflowClient, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _register(client, ["pass"])
    monkeypatch.delenv("HALA_ACTOR", raising=False)
    monkeypatch.delenv("USER", raising=False)
    with pytest.raises(HalaError, match="who is promoting"):
        _hala(server, "promote", model, "1")
    monkeypatch.setenv("USER", "svc")
    monkeypatch.setenv("HALA_ACTOR", "ci-bot")
    assert _hala(server, "promote", model, "1") == 0
    assert _tags(client, model, "1")[registry.TAG_PROMOTION_ACTOR] == "ci-bot"


def test_models_lists_aliases_verdicts_and_metrics(
    server: str, client: MlflowClient, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _register(client, ["pass", "fail"])
    client.set_registered_model_alias(model, registry.CANDIDATE_ALIAS, "2")
    assert _hala(server, "promote", model, "1", "--actor", "alice") == 0
    capsys.readouterr()
    assert _hala(server, "models") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == [
        "MODEL",
        "ALIAS",
        "VERSION",
        "VERDICT",
        "eval.average",
        "translation.chrf",
    ]
    ours = [line.split() for line in lines if line.startswith(f"{model} ")]
    assert [row[:6] for row in ours] == [
        [
            model,
            "candidate",
            "2",
            "fail",
            "0.35",
            "41",
        ],  # eval.average from the source run, chrF from the tag
        [model, "champion", "1", "pass", "0.25", "40"],
    ]
    assert ours[1][-2:] == ["by", "alice"]


def test_policy_is_data_and_validated(
    client: MlflowClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = promotion.load_policy()
    assert (
        promotion.POLICY_PATH.name == "promotion_policy.yaml" and promotion.POLICY_PATH.parent.name == "ops"
    )
    assert shipped.aliases["champion"].required_verdict == registry.GATE_PASS

    bad = tmp_path / "policy.yaml"
    bad.write_text("aliases:\n  champion: {required_verdict: pass, allow_forc: true}\n")
    with pytest.raises(promotion.PolicyError, match=r"field 'aliases.champion.allow_forc'"):
        promotion.load_policy(bad)
    bad.write_text("aliases:\n  latest: {required_verdict: pass}\n")
    with pytest.raises(promotion.PolicyError, match="cannot be an MLflow alias"):
        promotion.load_policy(bad)
    with pytest.raises(promotion.PolicyError, match="no promotion policy there"):
        promotion.load_policy(tmp_path / "missing.yaml")

    strict = tmp_path / "strict.yaml"
    strict.write_text("aliases:\n  champion: {required_verdict: pass, allow_force: false}\n")
    monkeypatch.setenv(promotion.POLICY_ENV, str(strict))
    policy = promotion.load_policy()
    model = _register(client, ["fail"])
    with pytest.raises(promotion.PromotionError, match="does not allow --force"):
        promotion.promote(
            client,
            policy,
            model,
            "1",
            alias="champion",
            actor="a",
            reason="a long enough reason to pass the length check",
            force=True,
        )
    reason = "a long enough reason to pass the length check"
    with pytest.raises(
        promotion.PromotionError, match="does not allow --force"
    ):  # the CLI reads the env's policy
        _hala(client.tracking_uri, "promote", model, "1", "--force", "--reason", reason, "--actor", "a")
    assert _champion(client, model) is None
