"""The library's subcommands of ``hala``: data check, Table 2 on a model, tiny models, the registry.

:mod:`hala_pipelines.cli` adds the commands that compile, run and submit the pipeline; this module
never imports the pipeline packages.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hala.config import TRANSLATION_SYSTEMS, DataConfig
from hala.errors import HalaError


def _cmd_data_check(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from hala.prepare import check_quarantine, prepare_source
    from hala.sources import get_source

    try:
        spec = get_source(args.source)
    except KeyError as exc:
        raise HalaError(str(exc.args[0])) from None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        counts = prepare_source(spec, args.path, out, num_shards=args.shards, limit=args.limit)
        quarantine = pq.read_table(out / "quarantine.parquet")
    report = {
        "source": spec.hub_id,
        "read": counts.read,
        "kept": counts.kept,
        "quarantined": counts.quarantined,
        "examples": _examples(quarantine, args.examples),
    }
    print(json.dumps(report, indent=2))
    # The stage's guard: the same fraction stops `hala data check` with a non-zero exit.
    check_quarantine(
        f"source {spec.key} ({args.path})",
        counts.read,
        quarantine,
        args.max_quarantine_fraction,
        exempt=spec.selections,
    )
    return 0


def _examples(quarantine: Any, per_reason: int) -> dict[str, list[dict[str, object]]]:
    """The first ``per_reason`` quarantined rows of each reason: row number, id and column."""
    examples: dict[str, list[dict[str, object]]] = {}
    for row in quarantine.to_pylist():
        found = examples.setdefault(row["reason"], [])
        if len(found) < per_reason:
            found.append({"row": row["row"], "id": row["id"], "column": row["column"]})
    return dict(sorted(examples.items()))


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def _cmd_eval_translation(args: argparse.Namespace) -> int:
    from hala.config import load_preset
    from hala.evaluation.report import translation_row
    from hala.evaluation.translation import direct_translate_fn, run_benchmark, system_prompt
    from hala.prepare import normalise_table, read_source
    from hala.sources import get_source
    from hala.translate.factory import make_engine

    preset = load_preset(args.preset)
    prompt = system_prompt(preset.eval.translation_prompts, args.system)
    cfg = preset.teacher.engine if args.system.startswith("teacher") else preset.corpus.engine
    if args.engine:
        cfg = cfg.model_copy(update={"kind": args.engine})
    records = {}
    for key, location in (("mmlu", args.mmlu), ("mmmlu", args.mmmlu)):
        spec = get_source(key)
        records[key] = normalise_table(spec, read_source(spec, location)).kept
    translate = direct_translate_fn(make_engine(args.model, cfg), prompt, cfg.max_new_tokens)
    result = run_benchmark(
        args.system, translate, prompt, records["mmlu"], records["mmmlu"], args.n, args.seed, args.out
    )
    print(translation_row(result))
    print(f"files: {result['dir']}")
    return 0


def _cmd_tiny_models(args: argparse.Namespace) -> int:
    from hala.tiny_models import build_tiny_models

    for name, path in build_tiny_models(Path(args.out), seed=args.seed).items():
        print(f"{name:<18} {path}")
    return 0


def library_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    """The ``hala`` parser with the library's subcommands; the pipeline package adds its own."""
    parser = argparse.ArgumentParser(
        prog="hala", description="The HALA translate-and-tune recipe on Kubeflow."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="source dataset tools").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("check", help="validate and normalise a local folder of a source's data files")
    p.add_argument("source", help="the source's hub id (Open-Orca/OpenOrca) or key (openorca)")
    p.add_argument("path", help="a local folder of data files (or a hub id, which downloads)")
    p.add_argument("--limit", type=_at_least(0), default=None, help="read only the first N rows")
    p.add_argument("--shards", type=_at_least(1), default=1, help="number of output shards (default 1)")
    p.add_argument(
        "--out",
        default=None,
        help="keep the shards and quarantine here, replacing earlier ones (default: discard)",
    )
    p.add_argument(
        "--examples",
        type=_at_least(0),
        default=3,
        help="example rows shown per quarantine reason (default 3)",
    )
    p.add_argument(
        "--max-quarantine-fraction",
        type=float,
        default=DataConfig.model_fields["max_quarantine_fraction"].default,
        help="exit non-zero when more rows than this are quarantined, the source's selections aside "
        "(default: %(default)s, the presets' data.max_quarantine_fraction default)",
    )
    p.set_defaults(func=_cmd_data_check)

    evaluation = sub.add_parser("eval", help="evaluation tools").add_subparsers(
        dest="eval_command", required=True
    )
    p = evaluation.add_parser(
        "translation", help="Table 2 on one model folder: MMLU questions EN->AR against MMMLU's Arabic"
    )
    p.add_argument("--model", required=True, help="the model folder to evaluate")
    p.add_argument(
        "--system",
        required=True,
        choices=TRANSLATION_SYSTEMS,
        help="which Table 2 system it is: picks the report's prompt for it",
    )
    p.add_argument("--mmlu", required=True, help="cais/mmlu test: a folder of its data files, or the hub id")
    p.add_argument(
        "--mmmlu", required=True, help="openai/MMMLU AR_XY test: a folder of its files, or the hub id"
    )
    p.add_argument("--n", type=int, default=500, help="questions sampled (default 500, the report's)")
    p.add_argument("--seed", type=int, default=42, help="sampling seed (default 42)")
    p.add_argument("--out", required=True, help="folder for the line-aligned files and scores.json")
    p.add_argument("--preset", default="paper", help="preset whose prompts and engine to use (default paper)")
    p.add_argument("--engine", choices=["transformers", "vllm"], default=None, help="override the engine")
    p.set_defaults(func=_cmd_eval_translation)

    p = sub.add_parser("tiny-models", help="build the tiny LFM2 models of the tiny preset, offline")
    p.add_argument("--out", required=True, help="folder to write one model folder per role into")
    p.add_argument("--seed", type=int, default=0, help="seed (same seed, same bytes)")
    p.set_defaults(func=_cmd_tiny_models)

    from hala.metrics import register as register_metrics
    from hala.ops.cli import register as register_ops
    from hala.run_report.cli import register as register_report

    register_ops(sub)
    register_metrics(sub)
    register_report(sub)
    return parser, sub


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; a user error prints one line and exits 2."""
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except HalaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the user gave: unwritable, missing, a folder where a file goes
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; check the path and its permissions", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """The library's subcommands alone (the ``hala`` console script is :mod:`hala_pipelines.cli`)."""
    return run_command(library_parser()[0], argv)
