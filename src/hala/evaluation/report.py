"""Report tables in the shape of the HALA report's Tables 1 and 2: markdown, CSV and a bar chart."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hala.errors import HalaError


@dataclass(frozen=True)
class Table:
    """A header and rows of cells (numbers are points, 0-100)."""

    header: list[str]
    rows: list[list[Any]]

    def markdown(self, title: str) -> str:
        """A GitHub-flavoured markdown table under a title."""
        cell = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)  # noqa: E731
        lines = [f"### {title}", "", "| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def _signed(value: float) -> str:
    return f"{value:+.1f}"


def _with_delta(value: float, base: float | None) -> str:
    return f"{value:.1f}" if base is None else f"{value:.1f} ({_signed(value - base)})"


def count_parameters(model_dir: str | Path) -> int:
    """The parameters stored in a model folder's ``*.safetensors`` files, read from their headers only.

    A tied output embedding is stored once and counts once, as ``model.num_parameters()`` counts it.
    """
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise HalaError(f"{model_dir}: no *.safetensors weights to count the parameters of")
    total = 0
    for file in files:
        with file.open("rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def format_params(count: int) -> str:
    """A parameter count the way the report's Params column writes one: ``354M``, ``1.2B``, ``96K``."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.1f}{unit}" if unit == "B" else f"{round(count / scale)}{unit}"
    return str(count)


def benchmark_table(
    scores: Mapping[str, Mapping[str, float]],
    benchmarks: Sequence[str],
    size: str,
    base_name: str,
    hala_name: str,
    params: Mapping[str, int] | None = None,
) -> Table:
    """Table 1 as the report lays it out, for one size, with the report's rows of that size bucket.

    One row per model: the base, the fine-tune before merging, and HALA (the merged model); columns
    Size, Model, Params, one per benchmark, and Average with the delta over the base (one decimal).
    Params is each model's parameter count (``params``: variant -> :func:`count_parameters` of its
    folder), written as the report writes its own; ``-`` where no count was given (never the size
    key: ``1.2b`` names a preset entry, not a count). Then the report's published rows of the same
    bucket (``tiny``: the nano bucket), marked as the report's; their averages are over all six tasks.
    """
    from hala import reference

    bucket = reference.BUCKET_OF_SIZE.get(size, "nano")
    header = ["Size", "Model", "Params", *(reference.TASK_NAMES.get(b, b) for b in benchmarks), "Average"]
    rows: list[list[Any]] = []
    base_average = scores["base"]["average"]
    for variant, name in (
        ("base", base_name),
        ("finetuned", f"{hala_name} (fine-tune, before merge)"),
        ("merged", hala_name),
    ):
        row = scores[variant]
        average = _with_delta(row["average"], None if variant == "base" else base_average)
        count = (params or {}).get(variant)
        cells = [f"{row[b]:.1f}" for b in benchmarks]
        rows.append([bucket, name, "-" if count is None else format_params(count), *cells, average])
    for published in reference.table1_bucket(bucket):
        by_task = published.by_task()
        base = next((r for r in reference.TABLE1 if r.model == published.base), None)
        average = _with_delta(published.average, base.average if base else None)
        cells = [f"{by_task[b]:.1f}" if b in by_task else "-" for b in benchmarks]
        rows.append([f"{bucket} (report)", published.model, published.params, *cells, average])
    return Table(header, rows)


def translation_table(results: Mapping[str, Mapping[str, Any]]) -> Table:
    """Table 2 as the report lays it out, the report's rows beside each block.

    A teacher block (FP16, then FP8 with deltas over FP16) and a lightweight-translator block (the
    LFM2 base, then ours with deltas over the base); columns BLEU, ROUGE-L (rouge-score's tokenizer,
    the report's), chrF++, and our Arabic-aware ROUGE-L; ``n`` is the number of questions scored.
    """
    from hala import reference

    metrics = ("bleu", "rouge_l", "chrf", "rouge_l_arabic")
    blocks = (
        ("Teacher translator", "teacher", "teacher_fp8"),
        ("Lightweight translator (LFM2-1.2B family)", "translator_base", "translator"),
    )
    published = {row.system: row for row in reference.TABLE2}
    rows: list[list[Any]] = []
    for title, anchor, compared in blocks:
        rows.append([title, "", "", "", "", "", ""])
        for system in (anchor, compared):
            if system not in results:
                continue
            r = results[system]
            base = results.get(anchor) if system == compared else None
            cells = [_with_delta(float(r[m]), float(base[m]) if base else None) for m in metrics]
            rows.append(["", system, int(r["n"]), *cells])
        for system in (anchor, compared):
            row = published[system]
            values = (row.bleu, row.rouge_l, row.chrf)
            printed = row.deltas or (None, None, None)  # the report's own deltas, as printed
            cells = [
                f"{v:.1f}" if d is None else f"{v:.1f} ({_signed(d)})"
                for v, d in zip(values, printed, strict=True)
            ]
            rows.append(["(report)", row.label, 500, *cells, "-"])
    header = ["block", "system", "n", "BLEU", "ROUGE-L", "chrF++", "ROUGE-L (Arabic-aware)"]
    return Table(header, rows)


def translation_row(result: Mapping[str, Any]) -> str:
    """One system's Table 2 row as text (what ``hala eval translation`` prints)."""
    return (
        f"{result['system']}: n={int(result['n'])} BLEU {float(result['bleu']):.1f}  "
        f"ROUGE-L {float(result['rouge_l']):.1f}  chrF++ {float(result['chrf']):.1f}  "
        f"ROUGE-L (Arabic-aware) {float(result['rouge_l_arabic']):.1f}  failed={int(result['failed'])}"
    )


def bar_chart(
    scores: Mapping[str, Mapping[str, float]], benchmarks: Sequence[str], path: Path, title: str
) -> Path:
    """Grouped bars: one group per benchmark and the average, one bar per model (base, fine-tune, HALA)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from hala import reference

    groups = [*benchmarks, "average"]
    series = (("base", "base"), ("finetuned", "fine-tune"), ("merged", "HALA (merged)"))
    x = np.arange(len(groups))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(groups)), 4))
    for i, (variant, label) in enumerate(series):
        ax.bar(x + i * width, [scores[variant][g] for g in groups], width, label=label)
    names = [reference.TASK_NAMES.get(g, g) for g in groups]
    ax.set_xticks(x + width * (len(series) - 1) / 2, names, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(table: Table, out_dir: Path, title: str) -> dict[str, Path]:
    """``table.md`` and ``table.csv`` in ``out_dir``, both in the table's (the report's) shape."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "table.md", "csv": out_dir / "table.csv"}
    paths["markdown"].write_text(table.markdown(title), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.header)
        writer.writerows([[f"{v:.4f}" if isinstance(v, float) else v for v in row] for row in table.rows])
    return paths
