"""``hala report RUN_ID --out FILE``: rebuild the run report of any pipeline run from MLflow alone."""

from __future__ import annotations

import argparse


def _cmd_report(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from hala.run_report.page import write_report
    from hala.tracking import check_store, tracking_uri

    uri = check_store(args.tracking_uri or tracking_uri())  # seconds, not MLflow's minutes of retries
    path = write_report(args.run_id, MlflowClient(tracking_uri=uri, registry_uri=uri), args.out)
    print(f"run report of {args.run_id}: {path.resolve()}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report`` to the ``hala`` parser's subparsers."""
    p = sub.add_parser(
        "report",
        help="write the HTML report of a pipeline run (tables, data funnel, curves, cost) from MLflow",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the pipeline's parent MLflow run id")
    p.add_argument("--out", required=True, help="HTML file to write (parent folders are created)")
    p.add_argument(
        "--tracking-uri", default=None, help="MLflow server (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)"
    )
    p.set_defaults(func=_cmd_report)
