"""The report's result sections: Tables 1 and 2 beside the report's, registered models and gates.

Tables 1 and 2 are built by :mod:`hala.evaluation.report` (the same functions as the markdown tables
of the report stages), so the page and the stage artifacts cannot disagree.
"""

from __future__ import annotations

from hala import registry
from hala.evaluation.report import benchmark_table, translation_table
from hala.run_report import charts, facts
from hala.run_report import markup as m
from hala.run_report.gather import Snapshot, VersionInfo
from hala.run_report.layout import EVAL_VARIANTS, stage_detail, stage_kind


def student_sizes(snapshot: Snapshot) -> list[str]:
    """The student sizes of the run: the preset's, else those with evaluation runs."""
    if snapshot.preset:
        return list(snapshot.preset.students)
    found = [
        stage_detail(r.name).rsplit("-", 1)[0] for r in snapshot.stages if stage_kind(r.name) == "evaluate"
    ]
    return list(dict.fromkeys(found))


def _version_of(snapshot: Snapshot, name: str) -> VersionInfo | None:
    versions = [v for v in snapshot.versions if v.name == name]
    return versions[-1] if versions else None


def verdict_line(version: VersionInfo | None, what: str) -> str:
    """The gate verdict on a model version, with its reasons, as a paragraph."""
    if version is None:
        return m.note(f"{what}: no model version registered by this run, so no gate verdict")
    verdict = version.tags.get(registry.TAG_GATE_VERDICT)
    label = f"{version.name} version {version.version}"
    if verdict is None:
        return m.note(f"{label}: no gate verdict recorded (the report stage did not finish)")
    css = "ok" if verdict == registry.GATE_PASS else "failed"
    reasons = facts.gate_reasons(version.tags)
    why = "<ul>" + "".join(f"<li>{m.text(r)}</li>" for r in reasons) + "</ul>" if reasons else ""
    return f'<p>Gate verdict on {m.esc(label)}: <strong class="{css}">{m.esc(verdict)}</strong></p>{why}'


def table1_section(snapshot: Snapshot) -> str:
    """Table 1 per student size, with the report's rows of its bucket, a chart and the gate verdict."""
    parts = []
    for size in student_sizes(snapshot):
        scores = facts.student_scores(snapshot, size)
        student = snapshot.preset.students.get(size) if snapshot.preset else None
        name = student.registered_name if student else f"HALA-{size}"
        base = student.base.id if student else "base"
        benchmarks = (
            snapshot.preset.eval.benchmarks
            if snapshot.preset
            else sorted(k for k in scores.get("base", {}) if k != "average")
        )
        parts.append(f"<h3>{m.esc(name)} ({m.esc(size)})</h3>")
        missing = [
            v for v in EVAL_VARIANTS if not all(k in scores.get(v, {}) for k in [*benchmarks, "average"])
        ]
        if missing:
            parts.append(
                m.note(
                    f"Table 1 for {size}: no complete scores of {', '.join(missing)} (evaluation unfinished)"
                )
            )
        else:
            params = facts.student_parameters(snapshot, size)
            table = benchmark_table(scores, benchmarks, size, base, name, params)
            parts.append(m.report_table(f"table1-{size}", table))
            title = f"{name}: Arabic benchmarks (accuracy, %)"
            parts.append(
                m.chart(f"chart-table1-{size}", charts.table1_chart(scores, benchmarks, title), title)
            )
        parts.append(verdict_line(_version_of(snapshot, name), f"{name}"))
    intro = m.note(
        "Accuracy (%) of the base, the fine-tune and HALA (slerp merge) on the Arabic benchmarks, "
        "deltas over the base in brackets; below them, in grey, the report's published rows of the same "
        "size bucket."
    )
    return m.section("table1", "Table 1: Arabic benchmarks, beside the report's", intro + "".join(parts))


def table2_section(snapshot: Snapshot) -> str:
    """Table 2 with the report's rows, the translator's gate verdict and a few translations to read."""
    results = facts.translation_results(snapshot)
    parts = []
    if results:
        parts.append(m.report_table("table2", translation_table(results)))
    else:
        parts.append(m.note("Table 2: no translation_eval stage finished"))
    translator = snapshot.preset.translator.registered_name if snapshot.preset else ""
    parts.append(verdict_line(_version_of(snapshot, translator), "the translator"))
    rows = [
        [system, i + 1, item["source"], item["reference"], item["hypothesis"]]
        for system, items in sorted(snapshot.samples.items())
        for i, item in enumerate(items)
    ]
    if rows:
        parts.append("<h3>First questions of the Table 2 sample, as each system translated them</h3>")
        header = ["system", "#", "English (cais/mmlu)", "reference (openai/MMMLU)", "output"]
        parts.append(m.table("table2-samples", header, rows))
    return m.section("table2", "Table 2: EN→AR translation, beside the report's", "".join(parts))


def models_section(snapshot: Snapshot) -> str:
    """The model versions the run registered, their aliases and gate verdicts."""
    if not snapshot.versions:
        return m.section("models", "Registered models", m.note("no model version was registered by this run"))
    rows = []
    for v in snapshot.versions:
        verdict = v.tags.get(registry.TAG_GATE_VERDICT, "none")
        css = {"pass": "ok", "fail": "failed"}.get(verdict, "notrun")
        rows.append(
            [
                v.name,
                v.version,
                ", ".join(v.aliases) or "-",
                v.tags.get(registry.TAG_ROLE, "?"),
                f'<span class="{css}">{m.esc(verdict)}</span>',
                "; ".join(facts.gate_reasons(v.tags)) or "-",
                f"{v.tags.get(registry.TAG_BASE_MODEL, '?')} @ {v.tags.get(registry.TAG_BASE_REVISION, '?')}",
            ]
        )
    header = ["model", "version", "aliases", "role", "gate", "reasons", "base @ revision"]
    return m.section("models", "Registered models", m.table("models", header, rows, raw_columns=[4]))
