"""Promote registered model versions by moving an alias, under a policy kept as data; roll back.

A promotion moves an alias (``champion``) only when the version's gate verdict is what the policy
requires, or with ``--force`` and a reason. Who, when, why and the version it replaced are written as
tags on the promoted version, and appended to a per-alias history on the registered model, which is
what ``--rollback`` replays to find the previous champion.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hala import registry
from hala.errors import HalaError

# Shipped as package data beside this module (importlib.resources), so an installed hala has it too.
POLICY_PATH = Path(str(resources.files("hala.ops") / "promotion_policy.yaml"))
POLICY_ENV = "HALA_PROMOTION_POLICY"
# MLflow's schema on PostgreSQL: registered_model_tags.value is VARCHAR(5000) (sqlite does not enforce
# it; tests/test_mlflow_postgres.py reads it off a live server). The history tag is kept within it.
HISTORY_MAX_CHARS = 5000
MAX_REASON_CHARS = 500  # a reason longer than this would crowd the history out
ACTOR_ENVS = ("HALA_ACTOR", "USER")


class PolicyError(HalaError):
    """The promotion policy file is missing or invalid."""


class PromotionError(HalaError):
    """A promotion or rollback is refused; the message says what to do."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AliasRule(_Strict):
    """What moving one alias requires."""

    required_verdict: str | None = Field(description="gate verdict required; null: no gate")
    allow_force: bool = False
    min_reason_length: int = Field(default=20, ge=1)


class PromotionPolicy(_Strict):
    """The whole policy: promotable aliases, history kept, metrics shown by ``hala models``."""

    aliases: dict[str, AliasRule] = Field(min_length=1)
    history_limit: int = Field(default=50, ge=2, le=1000)
    report_metrics: list[str] = Field(default_factory=list)

    @field_validator("aliases")
    @classmethod
    def _valid_alias_names(cls, value: dict[str, AliasRule]) -> dict[str, AliasRule]:
        for name in value:
            # MLflow refuses 'latest' and 'v<digits>' (they name versions) and names it cannot store.
            reserved = name.lower() == "latest" or re.fullmatch(r"[vV]\d+", name)
            if reserved or not re.fullmatch(r"[\w\-]+", name):
                raise ValueError(f"{name!r} cannot be an MLflow alias (reserved or not [A-Za-z0-9_-])")
        if registry.CANDIDATE_ALIAS in value:
            raise ValueError(f"'{registry.CANDIDATE_ALIAS}' is set at registration, not by promotion")
        return value


def policy_path(override: str | Path | None = None) -> Path:
    """The policy file: ``override``, else ``$HALA_PROMOTION_POLICY``, else the repository's."""
    return Path(override or os.environ.get(POLICY_ENV) or POLICY_PATH)


def load_policy(override: str | Path | None = None) -> PromotionPolicy:
    """Load and validate the promotion policy."""
    path = policy_path(override)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: no promotion policy there; pass --policy or set {POLICY_ENV}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    try:
        return PromotionPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in e['loc']) or '<root>'}': {e['msg']}" for e in exc.errors()
        )
        raise PolicyError(f"{path}: invalid promotion policy: {problems}") from None


def resolve_actor(explicit: str | None = None) -> str:
    """Who promotes: ``--actor``, else ``$HALA_ACTOR``, else ``$USER``."""
    for value in (explicit, *(os.environ.get(e) for e in ACTOR_ENVS)):
        if value and value.strip():
            return value.strip()
    raise PromotionError("who is promoting? pass --actor NAME or set HALA_ACTOR (recorded on the version)")


@dataclass(frozen=True)
class PromotionEvent:
    """One move of an alias, as recorded in the history and on the version's tags."""

    alias: str
    version: str
    previous: str  # version that held the alias before; "" when none did
    actor: str
    time: str  # UTC ISO 8601
    reason: str
    forced: bool
    kind: Literal["promote", "rollback"]


def _rule(policy: PromotionPolicy, alias: str) -> AliasRule:
    if alias not in policy.aliases:
        raise PromotionError(f"alias '{alias}' is not promotable; the policy allows {sorted(policy.aliases)}")
    return policy.aliases[alias]


def _missing(exc: MlflowException) -> bool:
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def _aliases(client: MlflowClient, model: str) -> dict[str, str]:
    try:
        found = client.get_registered_model(model)
    except MlflowException as exc:
        if _missing(exc):
            raise PromotionError(f"no registered model '{model}'; `hala models` lists them") from None
        raise
    return {alias: str(version) for alias, version in (found.aliases or {}).items()}


def _version_tags(client: MlflowClient, model: str, version: str) -> dict[str, str]:
    try:
        return dict(client.get_model_version(model, version).tags)
    except MlflowException as exc:
        if _missing(exc):
            raise PromotionError(
                f"model '{model}' has no version {version}; `hala models` lists its aliased versions"
            ) from None
        raise


def _gate_reasons(tags: dict[str, str]) -> str:
    raw = tags.get(registry.TAG_GATE_REASONS, "")
    try:
        reasons = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        reasons = [raw]
    return "; ".join(str(r) for r in reasons) if isinstance(reasons, list) and reasons else "none recorded"


def history(client: MlflowClient, model: str, alias: str) -> list[PromotionEvent]:
    """The recorded promotions of ``alias`` on ``model``, oldest first."""
    tags = client.get_registered_model(model).tags or {}
    raw = tags.get(registry.TAG_PROMOTION_HISTORY_PREFIX + alias)
    return [PromotionEvent(**item) for item in json.loads(raw)] if raw else []


def parse_version(value: str | int) -> str:
    """A model version as MLflow writes it: ``03`` is ``"3"``; anything but a positive number is an error."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise PromotionError(f"version {value!r} is not a model version: pass its number, e.g. 3")
    return str(int(text))


def _check_reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS:
        raise PromotionError(
            f"--reason is {len(reason)} characters; keep it to {MAX_REASON_CHARS} (link a ticket for more)"
        )
    return reason


def history_json(events: list[PromotionEvent], limit: int) -> str:
    """The newest events (at most ``limit``) whose JSON fits in :data:`HISTORY_MAX_CHARS`, oldest first."""
    kept = events[-limit:]
    while True:
        text = json.dumps([asdict(e) for e in kept])
        if len(text) <= HISTORY_MAX_CHARS or len(kept) == 1:
            return text
        kept = kept[1:]


def _record(client: MlflowClient, policy: PromotionPolicy, model: str, event: PromotionEvent) -> None:
    """Move the alias, tag the version and append the history as one step: on failure, undo all of it."""
    key = registry.TAG_PROMOTION_HISTORY_PREFIX + event.alias
    before = (client.get_registered_model(model).tags or {}).get(key)
    version_before = _version_tags(client, model, event.version)
    try:
        client.set_registered_model_tag(
            model, key, history_json([*history(client, model, event.alias), event], policy.history_limit)
        )
        client.set_registered_model_alias(model, event.alias, event.version)
        _tag_version(client, model, event)
    except Exception as exc:
        try:
            _restore(client, model, event, key, before, version_before)
        except Exception as undo:
            raise PromotionError(
                f"recording the move of '{event.alias}' of {model} to version {event.version} failed ({exc}) "
                f"and undoing it failed too ({undo}): check the alias, its history tag {key} and the "
                f"hala.promotion.* tags of version {event.version} by hand"
            ) from exc
        raise


def _restore(
    client: MlflowClient,
    model: str,
    event: PromotionEvent,
    key: str,
    before: str | None,
    version_before: dict[str, str],
) -> None:
    """Put the alias, the history and the version's promotion tags back as they were before ``_record``.

    A promotion tag the version had keeps its old value; one it did not have is deleted (deleting a
    tag that the failed step never wrote is a no-op).
    """
    if event.previous:
        client.set_registered_model_alias(model, event.alias, event.previous)
    else:
        client.delete_registered_model_alias(model, event.alias)
    if before is None:
        client.delete_registered_model_tag(model, key)
    else:
        client.set_registered_model_tag(model, key, before)
    for tag in _promotion_tags(event):
        if tag in version_before:
            client.set_model_version_tag(model, event.version, tag, version_before[tag])
        else:
            client.delete_model_version_tag(model, event.version, tag)


def _promotion_tags(event: PromotionEvent) -> dict[str, str]:
    """The ``hala.promotion.*`` tags a promotion or rollback writes on the version it moves to."""
    return {
        registry.TAG_PROMOTION_ALIAS: event.alias,
        registry.TAG_PROMOTION_ACTOR: event.actor,
        registry.TAG_PROMOTION_TIME: event.time,
        registry.TAG_PROMOTION_REASON: event.reason,
        registry.TAG_PROMOTION_FORCED: str(event.forced).lower(),
        registry.TAG_PROMOTION_KIND: event.kind,
        registry.TAG_PROMOTION_PREVIOUS: event.previous,
    }


def _tag_version(client: MlflowClient, model: str, event: PromotionEvent) -> None:
    for key, value in _promotion_tags(event).items():
        client.set_model_version_tag(model, event.version, key, value)


def _now(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")


def promote(
    client: MlflowClient,
    policy: PromotionPolicy,
    model: str,
    version: str,
    *,
    alias: str,
    actor: str,
    reason: str = "",
    force: bool = False,
    now: datetime | None = None,
) -> PromotionEvent | None:
    """Move ``alias`` to ``version`` when the policy allows; returns the event, or None if it held it."""
    rule = _rule(policy, alias)
    version = parse_version(version)
    reason = _check_reason(reason)
    if force and not rule.allow_force:
        raise PromotionError(f"the promotion policy does not allow --force for alias '{alias}'")
    if force and len(reason) < rule.min_reason_length:
        raise PromotionError(
            f"--force needs --reason of at least {rule.min_reason_length} characters saying why version "
            f"{version} of {model} may skip its gate (got {len(reason)})"
        )
    previous = _aliases(client, model).get(alias, "")
    tags = _version_tags(client, model, version)
    if previous == str(version):
        return None
    verdict = tags.get(registry.TAG_GATE_VERDICT)
    gated = rule.required_verdict is not None and verdict != rule.required_verdict
    if gated and not force:
        tag = registry.TAG_GATE_VERDICT
        found = f"gate verdict '{verdict}'" if verdict else f"no gate verdict (tag {tag})"
        raise PromotionError(
            f"version {version} of {model} has {found} (reasons: {_gate_reasons(tags)}); '{alias}' needs "
            f"'{rule.required_verdict}': fix and re-evaluate it, or use --force --reason TEXT"
        )
    event = PromotionEvent(
        alias=alias,
        version=str(version),
        previous=previous,
        actor=actor,
        time=_now(now),
        reason=reason or f"gate verdict {verdict}",
        forced=gated,
        kind="promote",
    )
    _record(client, policy, model, event)
    return event


def holders(events: list[PromotionEvent]) -> list[str]:
    """The alias's holders as a stack (a promotion pushes, a rollback pops); the last holds it now."""
    stack: list[str] = []
    for event in events:
        if event.kind == "promote":
            stack.append(event.version)
        elif stack:
            stack.pop()
    return stack


def rollback(
    client: MlflowClient,
    policy: PromotionPolicy,
    model: str,
    *,
    alias: str,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> PromotionEvent:
    """Give ``alias`` back to the version that held it before the current one's promotion."""
    _rule(policy, alias)
    reason = _check_reason(reason)
    current = _aliases(client, model).get(alias)
    if current is None:
        raise PromotionError(f"{model} has no '{alias}' to roll back; promote a version first")
    stack = holders(history(client, model, alias))
    if not stack or stack[-1] != current:
        recorded = stack[-1] if stack else "none"
        raise PromotionError(
            f"'{alias}' of {model} is version {current} but the last recorded promotion gave it to "
            f"{recorded}: it was moved outside `hala promote`; promote the version you want explicitly"
        )
    if len(stack) < 2:
        raise PromotionError(
            f"no version held '{alias}' of {model} before version {current}; nothing to restore"
        )
    target = stack[-2]
    _version_tags(client, model, target)  # still registered?
    event = PromotionEvent(
        alias=alias,
        version=target,
        previous=current,
        actor=actor,
        time=_now(now),
        reason=reason.strip() or f"rollback from version {current}",
        forced=False,
        kind="rollback",
    )
    _record(client, policy, model, event)
    return event


@dataclass(frozen=True)
class ModelRow:
    """One line of ``hala models``: an aliased version (or a model's newest version, alias '-')."""

    model: str
    alias: str
    version: str
    verdict: str
    metrics: dict[str, str]
    promoted: str


def _metric(tags: dict[str, str], run_metrics: dict[str, float], name: str) -> str:
    if name in tags:
        return tags[name]
    return f"{run_metrics[name]:.4g}" if name in run_metrics else "-"


def _run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    try:
        return dict(client.get_run(run_id).data.metrics)
    except MlflowException:
        return {}  # the source run was deleted or lives in another store: show the tags only


def model_rows(client: MlflowClient, policy: PromotionPolicy) -> list[ModelRow]:
    """Every registered model with each aliased version, its gate verdict, metrics and last promotion."""
    rows = []
    token = None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        for found in page:
            aliases = {a: str(v) for a, v in (found.aliases or {}).items()}
            if not aliases:
                newest = max((int(v.version) for v in found.latest_versions or []), default=None)
                aliases = {"-": str(newest)} if newest is not None else {"-": "-"}
            for alias, version in sorted(aliases.items()):
                if version == "-":
                    rows.append(ModelRow(found.name, alias, version, "-", {}, "-"))
                    continue
                mv = client.get_model_version(found.name, version)
                tags = dict(mv.tags)
                metrics = _run_metrics(client, mv.run_id)
                promoted = "-"
                if tags.get(registry.TAG_PROMOTION_ALIAS) == alias:
                    forced = " (forced)" if tags.get(registry.TAG_PROMOTION_FORCED) == "true" else ""
                    promoted = (
                        f"{tags.get(registry.TAG_PROMOTION_TIME, '?')} by "
                        f"{tags.get(registry.TAG_PROMOTION_ACTOR, '?')}{forced}"
                    )
                rows.append(
                    ModelRow(
                        model=found.name,
                        alias=alias,
                        version=version,
                        verdict=tags.get(registry.TAG_GATE_VERDICT, "-"),
                        metrics={m: _metric(tags, metrics, m) for m in policy.report_metrics},
                        promoted=promoted,
                    )
                )
        token = page.token
        if not token:
            return rows


def format_models(rows: list[ModelRow], metric_names: list[str]) -> str:
    """``hala models`` output: a header and one line per row."""
    if not rows:
        return "no registered models"
    width = max(len("MODEL"), *(len(r.model) for r in rows)) + 2
    head = f"{'MODEL':<{width}}{'ALIAS':<12}{'VERSION':<9}{'VERDICT':<9}"
    head += "".join(f"{m:<{max(len(m), 6) + 2}}" for m in metric_names) + "PROMOTED"
    lines = [head]
    for r in rows:
        line = f"{r.model:<{width}}{r.alias:<12}{r.version:<9}{r.verdict:<9}"
        line += "".join(f"{r.metrics.get(m, '-'):<{max(len(m), 6) + 2}}" for m in metric_names)
        lines.append(line + r.promoted)
    return "\n".join(lines)
