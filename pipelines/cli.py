"""The ``hala`` command: the library's commands plus those that compile, run and submit the pipeline.

``hala --help`` lists the subcommands, each with its own ``--help``; ``python -m hala_pipelines``
runs the same command. The library's own commands (``hala data check``, ``hala promote`` ...) live in
:mod:`hala.cli`, which never imports this package.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hala.cli import library_parser, run_command
from hala.ops.cli import mlflow_client, mlflow_options
from hala_pipelines import kfp_client as kfp_ops


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from hala.run_params import parse_overrides

    return parse_overrides("\n".join(args.set or []))


def _preset(args: argparse.Namespace) -> Any:
    from hala.config import load_preset
    from hala.run_params import apply_overrides

    return apply_overrides(load_preset(args.preset), _overrides(args), compile_time=True)


def _set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a preset setting by its dotted key (repeatable), e.g. --set merge.t=0.4",
    )


def _cmd_compile(args: argparse.Namespace) -> int:
    from hala_pipelines.compile import compile_preset

    path = compile_preset(args.preset, Path(args.output), _overrides(args))
    print(f"compiled preset '{args.preset}' to {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from hala_pipelines.local import run_local
    from hala_pipelines.summary import print_summary

    result = run_local(args.preset, Path(args.workdir), args.run_name, _overrides(args), cache=args.cache)
    print_summary(result)
    return 0


def _cmd_cluster_render(args: argparse.Namespace) -> int:
    from hala.config import load_preset
    from hala.training.render import render_preset
    from hala_components.images import image

    preset = load_preset(args.preset)
    files = render_preset(preset, Path(args.out), args.namespace, image("train"), args.trainer_release)
    for path in files:
        print(path)
    if not files:
        print(f"preset '{preset.name}' has no multi-node SFT (nodes > 1): a run creates no object by itself")
    return 0


def _connection(args: argparse.Namespace) -> kfp_ops.Connection:
    return kfp_ops.Connection(host=args.host, namespace=args.namespace, token=args.existing_token)


def _ui_link(args: argparse.Namespace, run_id: str) -> str:
    host = os.environ.get(kfp_ops.UI_HOST_ENV) or args.host or os.environ.get(kfp_ops.HOST_ENV)
    return kfp_ops.kfp_run_link(host, run_id) if host else f"run {run_id} (open it in the Kubeflow UI)"


def _plan(args: argparse.Namespace) -> kfp_ops.SubmitPlan:
    return kfp_ops.plan_submit(
        _preset(args),
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
    with kfp_ops.compiled_package(kfp_ops.compile_preset_package(args.preset, _overrides(args))) as package:
        done = kfp_ops.submit(client, package, plan)
    _report(args, plan, done, "run:")
    print(f"open:       {_ui_link(args, done.run_id)}")
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    cron = kfp_ops.validate_cron(args.cron)  # before compiling or connecting
    plan = _plan(args)
    client = _checked_client(args)
    with kfp_ops.compiled_package(kfp_ops.compile_preset_package(args.preset, _overrides(args))) as package:
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


def _cmd_rerun(args: argparse.Namespace) -> int:
    from hala.tracking import git_commit
    from hala_pipelines import rerun

    recorded = rerun.read_recorded_run(mlflow_client(args), args.run_id)
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


def _parser() -> argparse.ArgumentParser:
    parser, sub = library_parser()

    p = sub.add_parser("compile", help="compile a preset's pipeline to KFP YAML")
    p.add_argument("--preset", required=True, help="preset name (tiny, nano, small, paper) or YAML path")
    p.add_argument("--output", required=True, help="YAML file to write")
    _set_option(p)
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("run", help="run a preset's pipeline locally through KFP's local runner")
    p.add_argument("--preset", default="tiny", help="preset name or YAML path (default: tiny)")
    p.add_argument("--workdir", default="runs", help="folder for pipeline outputs (default: ./runs)")
    p.add_argument("--run-name", default="", help="name of the parent MLflow run (default: preset-timestamp)")
    p.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse the outputs of tasks whose settings and inputs did not change (default: --cache)",
    )
    _set_option(p)
    p.set_defaults(func=_cmd_run)

    cluster = sub.add_parser("cluster", help="cluster tools").add_subparsers(
        dest="cluster_command", required=True
    )
    p = cluster.add_parser(
        "render",
        help="write the Kubernetes objects a run creates by itself (multi-node SFT TrainJobs) as YAML",
    )
    p.add_argument("--preset", required=True, help="preset name (tiny, nano, small, paper) or YAML path")
    p.add_argument("--out", required=True, help="folder to write one YAML file per object into")
    p.add_argument("--namespace", default="hala", help="namespace the run executes in (default: hala)")
    p.add_argument(
        "--trainer-release",
        default=None,
        help="Kubeflow Trainer release to target (v2.2 or v2.3; default: the preset's, else v2.3)",
    )
    p.set_defaults(func=_cmd_cluster_render)
    p = sub.add_parser("submit", help="compile a preset, upload it to KFP and start a run")
    p.add_argument("--preset", required=True, help="preset name (nano, small, paper, tiny) or YAML path")
    p.add_argument("--version-name", default=None, help="pipeline version name (default: fingerprint+time)")
    _set_option(p)
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
    _set_option(p)
    _run_options(p)
    _kfp_options(p)
    _backend_option(p)
    p.set_defaults(func=_cmd_schedule)

    p = sub.add_parser("runs", help="list recent KFP runs")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    _kfp_options(p)
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("rerun", help="resubmit a recorded run with its exact preset and images")
    p.add_argument("run_id", help="the parent MLflow run id of the run to repeat")
    _run_options(p)
    _kfp_options(p)
    mlflow_options(p)
    p.set_defaults(func=_cmd_rerun)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hala`` console script."""
    return run_command(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
