"""The report's charts, drawn with matplotlib and returned as ``data:image/png;base64,...`` URIs.

Embedded in the page, they need no network and no script, so the page works offline and in the
Kubeflow UI's sandboxed iframe. Chart labels are source, stage and metric names (ASCII): matplotlib
does not shape Arabic, so Arabic text stays in the HTML, where the browser shapes it.
"""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hala.run_report.compute import StageCompute, by_group, totals
from hala.run_report.facts import FunnelRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_REASONS = 8  # quarantine reasons drawn one by one; the rest are added up as OTHER_REASONS
OTHER_REASONS = "other reasons"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory
    import matplotlib.pyplot as plt

    return plt


def data_uri(png: bytes) -> str:
    """A PNG as a data URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_uri(fig: Figure) -> str:
    """The figure as a PNG data URI (the figure is closed)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return data_uri(buffer.getvalue())


def _top_reasons(rows: Sequence[FunnelRow]) -> list[str]:
    counts: dict[str, int] = {}
    for row in rows:
        for reason, n in row.quarantined.items():
            counts[reason] = counts.get(reason, 0) + n
    return sorted(counts, key=lambda r: -counts[r])[:MAX_REASONS]


def _quarantined(row: FunnelRow, reason: str, top: Sequence[str]) -> int:
    """Rows of ``row`` quarantined for ``reason`` (for OTHER_REASONS: for any reason not in ``top``)."""
    if reason == OTHER_REASONS:
        return sum(n for r, n in row.quarantined.items() if r not in top)
    return row.quarantined.get(reason, 0)


def funnel_chart(rows: Sequence[FunnelRow]) -> str:
    """Left: rows read, kept, translated (or accepted) per source; right: quarantined rows by reason."""
    plt = _pyplot()
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.45 * len(rows) + 1.8), sharey=True)
    y = np.arange(len(rows))
    series = {
        "read": [r.read or 0 for r in rows],
        "kept": [r.kept or 0 for r in rows],
        "teacher-translated / judge-accepted": [r.out.get("teacher", r.out.get("judge", 0)) for r in rows],
        "corpus-translated": [r.out.get("corpus", 0) for r in rows],
    }
    for i, (label, counts) in enumerate(series.items()):
        left.barh(y + (i - 1.5) * 0.2, counts, 0.2, label=label)
    left.set_yticks(y, [r.source for r in rows])
    left.invert_yaxis()
    left.set_xlabel("rows")
    left.set_title("rows per source")
    left.legend(loc="lower right", fontsize=8)
    top = _top_reasons(rows)
    start = np.zeros(len(rows))
    for reason in [*top, OTHER_REASONS]:
        values = np.array([_quarantined(row, reason, top) for row in rows], dtype=float)
        if values.any():
            right.barh(y, values, left=start, label=reason)
            start += values
    right.set_xlabel("rows quarantined")
    right.set_title("quarantined, by stage: reason")
    if start.any():
        right.legend(loc="lower right", fontsize=7)
    else:
        right.text(0.5, 0.5, "nothing quarantined", ha="center", transform=right.transAxes)
    return figure_uri(fig)


def sft_chart(name: str, history: Mapping[str, Sequence[tuple[int, float]]]) -> str:
    """The loss (train, and eval when logged) and learning rate of one training, by optimizer step."""
    plt = _pyplot()
    fig, (loss_ax, lr_ax) = plt.subplots(1, 2, figsize=(11, 3.2))
    for key, style in (("train.loss", "-o"), ("eval.loss", "--s")):
        points = history.get(key, [])
        if points:
            loss_ax.plot([s for s, _ in points], [v for _, v in points], style, markersize=3, label=key)
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title(f"{name}: loss")
    loss_ax.legend(fontsize=8)
    points = history.get("train.learning_rate", [])
    lr_ax.plot([s for s, _ in points], [v for _, v in points], "-o", markersize=3, color="tab:green")
    lr_ax.set_xlabel("step")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_title(f"{name}: learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    return figure_uri(fig)


def compute_chart(rows: list[StageCompute]) -> str:
    """Wall time and GPU-hours per stage group that ran (the shards of one stage added up)."""
    plt = _pyplot()
    import numpy as np

    ran = {name: members for name, members in by_group(rows).items() if any(r.attempts for r in members)}
    groups = {name: totals(members) for name, members in ran.items()}
    names = list(groups)
    fig, (wall_ax, gpu_ax) = plt.subplots(1, 2, figsize=(12, 0.28 * len(names) + 1.6), sharey=True)
    y = np.arange(len(names))
    wall_ax.barh(y, [groups[n].wall_hours * 60 for n in names], color="tab:blue")
    wall_ax.set_yticks(y, names, fontsize=8)
    wall_ax.invert_yaxis()
    wall_ax.set_xlabel("wall time (minutes, all attempts)")
    wall_ax.set_title("wall time per stage")
    gpu_hours = [groups[n].gpu_hours or 0.0 for n in names]
    gpu_ax.barh(y, gpu_hours, color="tab:orange")
    gpu_ax.set_xlabel("GPU-hours")
    gpu_ax.set_title("GPU-hours per stage")
    if not any(gpu_hours):
        gpu_ax.set_xticks([])
        gpu_ax.text(0.5, 0.5, "no GPU used (every stage on CPU)", ha="center", transform=gpu_ax.transAxes)
    return figure_uri(fig)


def table1_chart(scores: Mapping[str, Mapping[str, float]], benchmarks: Sequence[str], title: str) -> str:
    """Table 1's grouped bars (base, fine-tune, HALA) as drawn by :func:`hala.evaluation.report.bar_chart`."""
    from hala.evaluation.report import bar_chart

    with tempfile.TemporaryDirectory() as tmp:
        path = bar_chart(scores, benchmarks, Path(tmp) / "table1.png", title)
        return data_uri(path.read_bytes())
