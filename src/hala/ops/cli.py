"""Model registry subcommands of ``hala``: promote (and roll back) an alias, list the models.

``register(sub)`` adds them to the ``hala`` parser; each handler returns an exit code and raises
:class:`~hala.errors.HalaError` on a user error (``hala.cli.main`` prints it and exits 2).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hala.errors import HalaError
from hala.registry import CHAMPION_ALIAS

if TYPE_CHECKING:  # mlflow takes seconds to import: only the handlers that need it import it
    from mlflow.tracking import MlflowClient


def mlflow_client(args: argparse.Namespace) -> MlflowClient:
    """An MLflow client of ``--tracking-uri`` (else the environment's), once the store answers."""
    from mlflow.tracking import MlflowClient

    from hala.tracking import check_store, tracking_uri

    uri = check_store(args.tracking_uri or tracking_uri())  # seconds, not MLflow's minutes of retries
    return MlflowClient(tracking_uri=uri)


def _cmd_promote(args: argparse.Namespace) -> int:
    from hala.ops import promotion

    policy = promotion.load_policy(args.policy)
    actor = promotion.resolve_actor(args.actor)
    client = mlflow_client(args)
    if args.rollback:
        if args.version is not None or args.force:
            raise HalaError("--rollback takes no VERSION and no --force: it restores the previous holder")
        event = promotion.rollback(client, policy, args.model, alias=args.to, actor=actor, reason=args.reason)
        print(f"rolled back '{args.to}' of {args.model}: version {event.previous} -> {event.version}")
        return 0
    if args.version is None:
        raise HalaError(f"which version of {args.model}? `hala promote {args.model} VERSION --to {args.to}`")
    moved = promotion.promote(
        client,
        policy,
        args.model,
        args.version,
        alias=args.to,
        actor=actor,
        reason=args.reason,
        force=args.force,
    )
    if moved is None:
        print(f"version {args.version} of {args.model} is already '{args.to}'; nothing changed")
        return 0
    before = f"version {moved.previous}" if moved.previous else "nothing"
    forced = " (forced past its gate)" if moved.forced else ""
    print(f"'{args.to}' of {args.model}: {before} -> version {moved.version}{forced}, by {actor}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from hala.ops import promotion

    policy = promotion.load_policy(args.policy)
    rows = promotion.model_rows(mlflow_client(args), policy)
    print(promotion.format_models(rows, policy.report_metrics))
    return 0


def mlflow_options(p: argparse.ArgumentParser) -> None:
    """The ``--tracking-uri`` option."""
    p.add_argument(
        "--tracking-uri", default=None, help="MLflow server (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)"
    )


def _policy_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        default=None,
        help="promotion policy YAML (default: $HALA_PROMOTION_POLICY, else the one hala ships)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the registry subcommands to the ``hala`` parser's subparsers."""
    p = sub.add_parser("promote", help="move a model alias (champion) to a version that passed its gate")
    p.add_argument("model", help="registered model name, e.g. hala-350m")
    p.add_argument("version", nargs="?", default=None, help="model version (not with --rollback)")
    p.add_argument("--to", default=CHAMPION_ALIAS, help=f"alias to move (default {CHAMPION_ALIAS})")
    p.add_argument("--force", action="store_true", help="promote despite the gate verdict (needs --reason)")
    p.add_argument("--reason", default="", help="why (recorded; required with --force)")
    p.add_argument("--rollback", action="store_true", help="give the alias back to its previous holder")
    p.add_argument("--actor", default=None, help="who promotes (default: $HALA_ACTOR, else $USER)")
    mlflow_options(p)
    _policy_option(p)
    p.set_defaults(func=_cmd_promote)

    p = sub.add_parser("models", help="list registered models with their aliases, verdicts and metrics")
    mlflow_options(p)
    _policy_option(p)
    p.set_defaults(func=_cmd_models)
