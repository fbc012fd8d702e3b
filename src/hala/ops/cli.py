"""Operations subcommands of ``hala``: submit, schedule, runs, promote, models, rerun.

``register(sub)`` adds them to the ``hala`` parser; each handler returns an exit code and raises
:class:`~hala.errors.HalaError` on a user error (``hala.cli.main`` prints it and exits 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from hala.errors import HalaError
from hala.ops import kfp_client as kfp_ops
from hala.registry import CHAMPION_ALIAS

if TYPE_CHECKING:  # mlflow takes seconds to import: only the handlers that need it import it
    from mlflow.tracking import MlflowClient


def _connection(args: argparse.Namespace) -> kfp_ops.Connection:
    return kfp_ops.Connection(host=args.host, namespace=args.namespace, token=args.existing_token)


def _ui_link(args: argparse.Namespace, run_id: str) -> str:
    host = os.environ.get(kfp_ops.UI_HOST_ENV) or args.host or os.environ.get(kfp_ops.HOST_ENV)
    return kfp_ops.kfp_run_link(host, run_id) if host else f"run {run_id} (open it in the Kubeflow UI)"


def _mlflow(args: argparse.Namespace) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    from hala.tracking import check_store, tracking_uri

    uri = check_store(args.tracking_uri or tracking_uri())  # seconds, not MLflow's minutes of retries
    return MlflowClient(tracking_uri=uri)


def _plan(args: argparse.Namespace) -> kfp_ops.SubmitPlan:
    from hala.config import load_preset

    return kfp_ops.plan_submit(
        load_preset(args.preset),
        experiment=args.experiment,
        run_name=args.run_name,
        version_name=args.version_name,
        namespace=args.namespace,
        # the pipeline's parent MLflow run links back to the run in this Kubeflow UI
        extra_params={"kfp_ui": args.host} if getattr(args, "host", None) else None,
    )


def _report(args: argparse.Namespace, plan: kfp_ops.SubmitPlan, done: kfp_ops.Submitted, what: str) -> None:
    print(f"pipeline:   {plan.pipeline_name} ({done.pipeline_id}), version {done.version_id}")
    print(f"experiment: {plan.experiment} ({done.experiment_id})")
    print(f"{what:<11} {plan.run_name} ({done.run_id})")


def _checked_client(args: argparse.Namespace) -> kfp_ops.KfpClient:
    """Connect, then refuse a backend too old for the pipeline before compiling or uploading."""
    client = kfp_ops.connect(_connection(args))
    warning = kfp_ops.check_backend(client, allow_old=args.allow_old_backend)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return client


def _cmd_submit(args: argparse.Namespace) -> int:
    plan = _plan(args)
    client = _checked_client(args)
    with kfp_ops.compiled_package(kfp_ops.compile_preset_package(args.preset)) as package:
        done = kfp_ops.submit(client, package, plan)
    _report(args, plan, done, "run:")
    print(f"open:       {_ui_link(args, done.run_id)}")
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    cron = kfp_ops.validate_cron(args.cron)  # before compiling or connecting
    plan = _plan(args)
    client = _checked_client(args)
    with kfp_ops.compiled_package(kfp_ops.compile_preset_package(args.preset)) as package:
        done = kfp_ops.schedule(
            client, package, plan, cron, max_concurrency=args.max_concurrency, catchup=args.catchup
        )
    _report(args, plan, done, "recurring:")
    print(f"schedule:   {cron} (max concurrency {args.max_concurrency}, catchup {args.catchup})")
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    client = kfp_ops.connect(_connection(args))
    print(kfp_ops.format_runs(kfp_ops.recent_runs(client, args.limit, args.namespace)))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from hala.ops import promotion

    policy = promotion.load_policy(args.policy)
    actor = promotion.resolve_actor(args.actor)
    client = _mlflow(args)
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
    rows = promotion.model_rows(_mlflow(args), policy)
    print(promotion.format_models(rows, policy.report_metrics))
    return 0


def _cmd_rerun(args: argparse.Namespace) -> int:
    from hala.ops import rerun
    from hala.tracking import git_commit

    recorded = rerun.read_recorded_run(_mlflow(args), args.run_id)
    for warning in (rerun.commit_warning(recorded, git_commit()), rerun.image_warning(recorded)):
        if warning:
            print(warning, file=sys.stderr)
    plan = rerun.rerun_plan(
        recorded, experiment=args.experiment, run_name=args.run_name, namespace=args.namespace
    )
    client = kfp_ops.connect(_connection(args))
    with kfp_ops.compiled_package(rerun.compile_step(recorded)) as package:
        done = kfp_ops.submit(client, package, plan)
    _report(args, plan, done, "run:")
    print(f"rerun of:   MLflow run {recorded.run_id}")
    print(f"open:       {_ui_link(args, done.run_id)}")
    return 0


def _kfp_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        default=None,
        help="KFP API endpoint, e.g. http://localhost:8080 (default: $KF_PIPELINES_ENDPOINT; none inside "
        "the cluster, where the pod's service account is used)",
    )
    p.add_argument(
        "--existing-token",
        default=None,
        help=f"bearer token for the KFP API (default: ${kfp_ops.TOKEN_ENV})",
    )
    p.add_argument("--namespace", default=None, help="profile namespace in multi-user Kubeflow")


def _backend_option(p: argparse.ArgumentParser) -> None:
    needed = ".".join(map(str, kfp_ops.MIN_BACKEND))
    p.add_argument(
        kfp_ops.ALLOW_OLD_FLAG,
        action="store_true",
        help=f"upload even when the KFP backend reports a version older than {needed} (runs may fail)",
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--experiment", default=None, help="KFP experiment (default: the preset's tracking.experiment)"
    )
    p.add_argument("--run-name", default=None, help="run name, also the parent MLflow run's name")


def _mlflow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri", default=None, help="MLflow server (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)"
    )


def _policy_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        default=None,
        help="promotion policy YAML (default: $HALA_PROMOTION_POLICY, else mlflow/)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the operations subcommands to the ``hala`` parser's subparsers."""
    p = sub.add_parser("submit", help="compile a preset, upload it to KFP and start a run")
    p.add_argument("--preset", required=True, help="preset name (nano, small, paper, tiny) or YAML path")
    p.add_argument("--version-name", default=None, help="pipeline version name (default: fingerprint+time)")
    _run_options(p)
    _kfp_options(p)
    _backend_option(p)
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("schedule", help="compile a preset, upload it to KFP and create a recurring run")
    p.add_argument("--preset", required=True, help="preset name or YAML path")
    p.add_argument("--cron", required=True, help=kfp_ops.CRON_FORMAT)
    p.add_argument("--max-concurrency", type=int, default=1, help="runs of this schedule at once (default 1)")
    p.add_argument(
        "--catchup",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="backfill missed intervals after a pause (default: --no-catchup)",
    )
    p.add_argument("--version-name", default=None, help="pipeline version name (default: fingerprint+time)")
    _run_options(p)
    _kfp_options(p)
    _backend_option(p)
    p.set_defaults(func=_cmd_schedule)

    p = sub.add_parser("runs", help="list recent KFP runs")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    _kfp_options(p)
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("promote", help="move a model alias (champion) to a version that passed its gate")
    p.add_argument("model", help="registered model name, e.g. hala-350m")
    p.add_argument("version", nargs="?", default=None, help="model version (not with --rollback)")
    p.add_argument("--to", default=CHAMPION_ALIAS, help=f"alias to move (default {CHAMPION_ALIAS})")
    p.add_argument("--force", action="store_true", help="promote despite the gate verdict (needs --reason)")
    p.add_argument("--reason", default="", help="why (recorded; required with --force)")
    p.add_argument("--rollback", action="store_true", help="give the alias back to its previous holder")
    p.add_argument("--actor", default=None, help="who promotes (default: $HALA_ACTOR, else $USER)")
    _mlflow_options(p)
    _policy_option(p)
    p.set_defaults(func=_cmd_promote)

    p = sub.add_parser("models", help="list registered models with their aliases, verdicts and metrics")
    _mlflow_options(p)
    _policy_option(p)
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("rerun", help="resubmit a recorded run with its exact preset and images")
    p.add_argument("run_id", help="the parent MLflow run id of the run to repeat")
    _run_options(p)
    _kfp_options(p)
    _mlflow_options(p)
    p.set_defaults(func=_cmd_rerun)
