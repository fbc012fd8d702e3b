"""The report's run sections: header and summary, compute and cost, stage outcomes, lineage."""

from __future__ import annotations

import datetime as dt

from hala import reference, registry
from hala.run_report import charts, facts
from hala.run_report import markup as m
from hala.run_report.compute import NOT_RUN, StageCompute, Totals, by_category, by_group, group_of, totals
from hala.run_report.gather import Snapshot
from hala.run_report.layout import CATEGORIES, TRAINING, TRANSLATION

_REPORT_COST = {
    TRANSLATION: (reference.TRANSLATION_COST_USD, "12xA100"),
    TRAINING: (reference.TRAINING_COST_USD, "8xH100-SXM"),
}


def when(ms: int | None) -> str:
    """A run time (ms since the epoch) in UTC."""
    return (
        "-" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def outcome_counts(rows: list[StageCompute]) -> dict[str, int]:
    """How many stages finished, failed, are still open, did not run, and were reused."""
    counts = {"finished": 0, "failed": 0, "running": 0, "did not run": 0, "reused": 0}
    for row in rows:
        key = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed", NOT_RUN: "did not run"}
        counts[key.get(row.status, "running")] += 1
        counts["reused"] += row.reused_from is not None
    return counts


def header(snapshot: Snapshot, rows: list[StageCompute]) -> str:
    """Title, status, times, links and one line of badges: stage outcomes, gates, cost."""
    p = snapshot.parent
    duration = f", {p.seconds / 60:.1f} min" if p.seconds is not None else " (still open)"
    kfp = p.tags.get(registry.TAG_KFP_RUN_LINK)
    links = [m.link(snapshot.ui_link(p.run_id), f"MLflow run {p.run_id}")]
    links.append(m.link(kfp, "KFP run") if kfp else m.esc(f"KFP run {p.tags.get('hala.kfp_run_id', '?')}"))
    badges = [
        f'<span class="badge">{m.esc(n)} {m.esc(k)}</span>' for k, n in outcome_counts(rows).items() if n
    ]
    for v in snapshot.versions:
        verdict = v.tags.get(registry.TAG_GATE_VERDICT, "no verdict")
        badges.append(f'<span class="badge">{m.esc(v.name)} v{m.esc(v.version)}: {m.esc(verdict)}</span>')
    cost = totals(rows).cost
    badges.append(f'<span class="badge">GPU cost {m.money(cost)}</span>')
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<h1>HALA run report: {m.esc(p.name)}</h1>"
        f"<p>Pipeline run {m.status(p.status)}; "
        f"preset <strong>{m.esc(p.params.get('preset', '?'))}</strong>; "
        f"started {when(p.start_ms)}{duration}. {' · '.join(links)}. Built {built} from MLflow alone.</p>"
        f"<p>{''.join(badges)}</p>"
    )


def _runs_cell(members: list[StageCompute]) -> str:
    counts = outcome_counts(members)
    parts = [
        f'<span class="{css}">{counts[k]} {k}</span>'
        for k, css in (
            ("finished", "ok"),
            ("failed", "failed"),
            ("running", "running"),
            ("did not run", "notrun"),
            ("reused", "reused"),
        )
        if counts[k]
    ]
    return ", ".join(parts)


def _category_row(name: str, t: Totals) -> list[str]:
    report = _REPORT_COST.get(name)
    beside = f"${report[0]:,} ({report[1]})" if report else "-"
    unpriced = f" + {t.unpriced_gpu_hours:.2f} GPU-h without a price" if t.unpriced_gpu_hours else ""
    return [name, f"{t.wall_hours:.3f}", m.number(t.gpu_hours, 3), m.money(t.cost) + unpriced, beside]


def compute_section(snapshot: Snapshot, rows: list[StageCompute]) -> str:
    """Wall time x GPUs = GPU-hours per stage, priced per pool, with totals beside the report's costs."""
    preset = snapshot.preset
    prices = (
        ", ".join(f"{pool} ${price:.2f}" for pool, price in preset.prices.per_gpu_hour.items())
        if preset
        else ""
    )
    intro = m.note(
        "Wall time is each stage run's start to end in MLflow (all attempts); GPUs are where the preset "
        "places the stage; cost = GPU-hours x the preset's price per GPU-hour of that pool "
        f"({prices or 'no prices set'}). Pod start-up and tasks without an MLflow run are not timed. "
        f"Preset: {snapshot.preset_note}."
    )
    cats = by_category(rows)
    body = [_category_row(c, cats[c]) for c in CATEGORIES]
    total = _category_row("total", cats["total"])
    total[-1] = f"${reference.TRAINING_COST_USD + reference.TRANSLATION_COST_USD:,}"
    summary = m.table(
        "compute-totals", ["category", "wall hours", "GPU-hours", "cost", "the report"], [*body, total]
    )
    detail = []
    for group, members in by_group(rows).items():
        t, first = totals(members), members[0]
        detail.append(
            [
                group,
                _runs_cell(members),
                first.pool or "?",
                m.number(first.gpus, 0),
                f"{t.wall_hours * 60:.2f}",
                m.number(t.gpu_hours, 3),
                m.money(first.price) if first.price is not None else "-",
                m.money(t.cost),
            ]
        )
    header = ["stage", "runs", "pool", "GPUs per run", "wall minutes", "GPU-hours", "$/GPU-hour", "cost"]
    ran = any(r.attempts for r in rows)
    chart = (
        m.chart("chart-compute", charts.compute_chart(rows), "wall time and GPU-hours per stage")
        if ran
        else ""
    )
    return m.section(
        "compute",
        "Compute and cost",
        intro + summary + chart + m.table("compute-stages", header, detail, raw_columns=[1]),
    )


def stages_section(snapshot: Snapshot, rows: list[StageCompute]) -> str:
    """Every stage that did not simply finish: failed, still open, did not run, retried or reused."""
    odd = [r for r in rows if r.status != "FINISHED" or r.attempts > 1 or r.reused_from]
    if not odd:
        return m.section(
            "stages", "Stage outcomes", m.note(f"all {len(rows)} stages finished, each in one attempt")
        )
    body = []
    for r in (r for r in odd if r.status != NOT_RUN):
        what = m.status(r.status)
        if r.reused_from:
            source = m.link(snapshot.ui_link(r.reused_from), r.reused_from)
            what += f' <span class="reused">reused the outputs of run {source}</span>'
        run = m.link(snapshot.ui_link(r.run_id), r.run_id) if r.run_id else "-"
        body.append([r.name, what, r.attempts, r.open_attempts, run])
    never: dict[str, int] = {}
    for r in (r for r in odd if r.status == NOT_RUN):
        never[group_of(r.name)] = never.get(group_of(r.name), 0) + 1
    for group, n in never.items():
        body.append([group if n == 1 else f"{group} ({n} shards)", m.status(NOT_RUN), 0, 0, "-"])
    header = ["stage", "outcome", "attempts", "still open", "MLflow run"]
    intro = m.note(
        f"{len(rows) - len(odd)} other stages finished in one attempt. A task that failed before opening its "
        "MLflow run (an import error, a pod that never started) shows as did not run: its logs are in the "
        "Kubeflow UI."
    )
    return m.section("stages", "Stage outcomes", m.table("stages", header, body, raw_columns=[1, 4]) + intro)


def lineage_section(snapshot: Snapshot) -> str:
    """Commit, preset fingerprint, seed, KFP run, images, package versions and dataset revisions."""
    rows = [[label, m.url_or_text(value)] for label, value in facts.lineage(snapshot)]
    return m.section("lineage", "Lineage", m.table("lineage", ["what", "value"], rows, raw_columns=[1]))
