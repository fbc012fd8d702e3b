"""Benchmark data from a local folder instead of the hub: layout, column check and task configs.

A local benchmark folder ``<data_root>/<benchmark key>/`` mirrors the hub repository: a ``README.md``
whose YAML ``configs:`` header maps each config name (LightEval's ``hf_subset``) to its split files,
and the files themselves. ``datasets.load_dataset(folder, config)`` reads it offline, so LightEval's
own task config works unchanged once its ``hf_repo`` names the folder. Only the configs present
locally are evaluated (the fixtures hold a few subsets per benchmark).

Evidence: this is how the hub repositories themselves are laid out. MBZUAI/ArabicMMLU's card maps
each config to ``<subject>/test.csv`` and ``<subject>/dev.csv`` in such a ``configs:`` header, and
OALL/AlGhafa-Arabic-LLM-Benchmark-Native's maps each to ``<config>/test-*`` and
``<config>/validation-*`` (per-benchmark details in :mod:`hala.evaluation.benchmarks`); the
config names are LightEval's ``hf_subset`` values, spaces and parentheses included
(``"Driving Test"``, ``"Arabic Language (General)"``). The check reads column names only (a
parquet schema, a CSV header, a JSON line's keys): column types of a CSV are what the reader infers.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hala.errors import HalaError
from hala.evaluation.benchmarks import get_benchmark, lighteval_configs

if TYPE_CHECKING:
    from lighteval.tasks.lighteval_task import LightevalTaskConfig


class EvalDataError(HalaError):
    """A local benchmark folder is missing, malformed or lacks a column LightEval's prompt function reads."""


@dataclass(frozen=True)
class LocalConfig:
    """One config of a local benchmark folder: its name and split -> data files."""

    name: str
    splits: dict[str, tuple[Path, ...]]


def read_layout(folder: Path) -> dict[str, LocalConfig]:
    """The configs declared in ``folder/README.md`` (YAML front matter ``configs:``), files resolved."""
    card = folder / "README.md"
    if not card.is_file():
        raise EvalDataError(f"{folder}: no README.md; a local benchmark folder needs a `configs:` header")
    text = card.read_text(encoding="utf-8")
    parts = text.split("---", 2)
    if not text.startswith("---") or len(parts) < 3:
        raise EvalDataError(f"{card}: no YAML front matter (--- ... ---) with a `configs:` list")
    header: Any = yaml.safe_load(parts[1]) or {}
    layout: dict[str, LocalConfig] = {}
    for entry in header.get("configs") or []:
        name = str(entry["config_name"])
        files = entry.get("data_files") or []
        splits = {str(f["split"]): _resolve(folder, card, name, str(f["path"])) for f in files}
        layout[name] = LocalConfig(name=name, splits=splits)
    if not layout:
        raise EvalDataError(f"{card}: the `configs:` list is empty")
    return layout


def _resolve(folder: Path, card: Path, config: str, pattern: str) -> tuple[Path, ...]:
    found = tuple(sorted(folder.glob(pattern)))
    if not found:
        raise EvalDataError(f"{card}: config {config!r} names {pattern!r}, which matches no file")
    return found


def column_names(path: Path) -> list[str]:
    """The column names of a parquet, CSV or JSON-lines data file (read from its header only)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            return next(csv.reader(fh), [])
    if suffix in {".jsonl", ".json"}:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
        return list(json.loads(first)) if first.strip() else []
    raise EvalDataError(f"{path}: unsupported data file type {suffix!r} (use parquet, csv or jsonl)")


def local_task_configs(key: str, data_root: Path) -> tuple[LightevalTaskConfig, ...]:
    """LightEval's configs of benchmark ``key`` for the subsets in ``data_root/key``, reading from there.

    Each config is LightEval's own (prompt function, metric, splits) with only ``hf_repo`` (and
    ``hf_revision``) replaced. Raises ``EvalDataError`` naming the benchmark, file and column when a
    scored split lacks a column the prompt function reads, or when a config is not a known subset.
    """
    spec = get_benchmark(key)
    folder = (data_root / key).resolve()
    if not folder.is_dir():
        raise EvalDataError(f"{key}: no folder {folder} (expected the {spec.title} data in the hub layout)")
    layout = read_layout(folder)
    by_subset = {c.hf_subset: c for c in lighteval_configs(key)}
    unknown = sorted(set(layout) - set(by_subset))
    if unknown:
        raise EvalDataError(
            f"{key}: {folder / 'README.md'} declares configs {unknown} that are not {spec.title} subsets "
            f"in LightEval; known: {sorted(by_subset)}"
        )
    configs = []
    for name, local in layout.items():
        config = by_subset[name]
        for split in config.evaluation_splits:
            if split not in local.splits:
                raise EvalDataError(
                    f"{key}: config {name!r} in {folder} has no {split!r} split (LightEval scores it)"
                )
            for path in local.splits[split]:
                check_columns(key, path)
        configs.append(with_data_location(config, str(folder)))
    return tuple(configs)


def with_data_location(config: LightevalTaskConfig, hf_repo: str) -> LightevalTaskConfig:
    """A copy of LightEval's ``config`` that reads ``hf_repo`` (a folder) at its latest revision.

    LightEval's Arabic configs are subclasses whose ``__init__`` takes only a name and a subset, so
    the copy is rebuilt as a plain ``LightevalTaskConfig`` from every field of the original.
    """
    from lighteval.tasks.lighteval_task import LightevalTaskConfig

    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(LightevalTaskConfig) if f.init}
    return LightevalTaskConfig(**{**values, "hf_repo": hf_repo, "hf_revision": None})


def check_columns(key: str, path: Path) -> None:
    """Raise ``EvalDataError`` if ``path`` lacks a column LightEval's prompt function for ``key`` reads."""
    spec = get_benchmark(key)
    present = set(column_names(path))
    missing = [c for c in spec.required if c not in present]
    if missing:
        raise EvalDataError(
            f"{key}: {path} has no column {missing[0]!r}"
            + (f" (also missing: {missing[1:]})" if missing[1:] else "")
            + f"; LightEval's {spec.title} prompt function reads {list(spec.required)}"
        )
