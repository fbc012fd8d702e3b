"""Report tables in the shape of the HALA report's Tables 1 and 2: markdown, CSV and a bar chart."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Table:
    """A header and rows of cells (numbers are points, 0-100)."""

    header: list[str]
    rows: list[list[Any]]

    def markdown(self, title: str) -> str:
        """A GitHub-flavoured markdown table under a title."""
        cell = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
        lines = [f"### {title}", "", "| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def benchmark_table(scores: Mapping[str, Mapping[str, float]], benchmarks: Sequence[str]) -> Table:
    """One row per benchmark and the average: base, fine-tune, merged, merged minus base (points)."""
    rows = []
    for key in [*benchmarks, "average"]:
        base, finetuned, merged = (scores[v][key] for v in ("base", "finetuned", "merged"))
        rows.append([key, base, finetuned, merged, merged - base])
    return Table(["benchmark", "base", "fine-tune", "merged", "Δ merged-base"], rows)


def translation_table(results: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per system: n, BLEU, chrF++, ROUGE-L (report-compatible) and ROUGE-L (Arabic-aware)."""
    rows = [
        [
            system,
            int(r["n"]),
            float(r["bleu"]),
            float(r["chrf"]),
            float(r["rouge_l"]),
            float(r["rouge_l_arabic"]),
        ]
        for system, r in results.items()
    ]
    return Table(["system", "n", "BLEU", "chrF++", "ROUGE-L", "ROUGE-L (Arabic-aware)"], rows)


def bar_chart(table: Table, path: Path, title: str) -> Path:
    """Grouped bars: one group per row, one bar per numeric column except the last (the delta)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    series = table.header[1:-1]
    x = np.arange(len(table.rows))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(table.rows)), 4))
    for i, name in enumerate(series):
        ax.bar(x + i * width, [row[1 + i] for row in table.rows], width, label=name)
    ax.set_xticks(x + width * (len(series) - 1) / 2, [str(row[0]) for row in table.rows], rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(table: Table, out_dir: Path, title: str, chart: bool) -> dict[str, Path]:
    """``table.md``, ``table.csv`` and (for benchmark tables) ``chart.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "table.md", "csv": out_dir / "table.csv"}
    paths["markdown"].write_text(table.markdown(title), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.header)
        writer.writerows([[f"{v:.4f}" if isinstance(v, float) else v for v in row] for row in table.rows])
    if chart:
        paths["chart"] = bar_chart(table, out_dir / "chart.png", title)
    return paths
