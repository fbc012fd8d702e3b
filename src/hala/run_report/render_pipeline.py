"""The report's pipeline sections: the data funnel, the SFT curves, the judge and corpus, the FP8 teacher."""

from __future__ import annotations

from hala import reference
from hala.run_report import charts, facts
from hala.run_report import markup as m
from hala.run_report.gather import Snapshot
from hala.run_report.layout import TRANSLATOR_ROLE
from hala.run_report.render_results import student_sizes


def funnel_section(snapshot: Snapshot) -> str:
    """Rows per source through prepare and translation (or the judge), quarantined by reason."""
    rows = facts.funnel(snapshot)
    if not rows:
        return m.section("funnel", "Data funnel", m.note("no source was prepared"))
    body = [
        [
            r.source,
            m.status(r.status),
            m.number(r.read, 0),
            m.number(r.kept, 0),
            m.number(r.out.get(facts.TEACHER), 0),
            m.number(r.out.get(facts.JUDGE), 0),
            m.number(r.out.get(facts.CORPUS), 0),
            m.number(sum(r.quarantined.values()), 0),
            "; ".join(f"{k} {n:,}" for k, n in r.quarantined.items()) or "-",
        ]
        for r in rows
    ]
    header = [
        "source",
        "prepare",
        "read",
        "kept",
        "teacher-translated",
        "judge-accepted",
        "corpus-translated",
    ]
    header += ["quarantined", "by stage: reason"]
    intro = m.note(
        "read = kept + quarantined at prepare; kept rows go on to the FP8 teacher (OpenOrca), the judge "
        "(OPUS-100) and the translator (corpus sources); their quarantines and the judge's rejects follow."
    )
    chart = m.chart(
        "chart-funnel", charts.funnel_chart(rows), "rows per source and quarantined rows by reason"
    )
    return m.section(
        "funnel", "Data funnel per source", intro + chart + m.table("funnel", header, body, raw_columns=[1])
    )


def training_section(snapshot: Snapshot) -> str:
    """The loss and learning-rate curves of each SFT run, and its end-of-training figures."""
    latest = snapshot.latest()
    roles = [TRANSLATOR_ROLE, *student_sizes(snapshot)]
    parts, rows = [], []
    for role in roles:
        run = latest.get(f"sft-{role}")
        history = snapshot.histories.get(f"sft-{role}", {})
        if run is None or not history.get("train.loss"):
            parts.append(m.note(f"sft-{role}: {'did not run' if run is None else 'no loss curve logged'}"))
        else:
            alt = f"sft-{role} loss and learning rate by step"
            parts.append(m.chart(f"chart-sft-{role}", charts.sft_chart(f"sft-{role}", history), alt))
        if run is not None:
            s = facts.prefixed(run, "sft")
            rows.append(
                [
                    f"sft-{role}",
                    m.status(run.status),
                    m.number(s.get("global_step"), 0),
                    m.number(s.get("train_loss"), 4),
                    m.number(s.get("eval_loss"), 4),
                    m.number(s.get("train_tokens"), 0),
                    m.number(s.get("tokens_per_second"), 1),
                    m.number(s.get("wall_seconds"), 1),
                    m.number(s.get("examples_kept"), 0),
                ]
            )
    header = [
        "training",
        "status",
        "steps",
        "train loss",
        "eval loss",
        "tokens",
        "tokens/s",
        "seconds",
        "examples",
    ]
    table = m.table("sft", header, rows, raw_columns=[1]) if rows else ""
    return m.section("training", "Training: SFT loss and learning rate", table + "".join(parts))


def judge_section(snapshot: Snapshot, funnel_rows: list[facts.FunnelRow]) -> str:
    """The judge's acceptance rate, the bilingual set and the corpus, beside the report's figures."""
    judge = facts.judge_figures(snapshot)
    bilingual = facts.prefixed(snapshot.latest().get("bilingual_set"), "bilingual")
    corpus = snapshot.preset.corpus.sources if snapshot.preset else []
    teacher = next((r.out.get(facts.TEACHER) for r in funnel_rows if r.source == "openorca"), None)
    rows = [
        [
            "OPUS-100 pairs judged",
            m.number(judge.judged if judge else None, 0),
            f"~{reference.JUDGE_CANDIDATES:,}",
        ],
        [
            "accepted by the judge",
            m.number(judge.accepted if judge else None, 0),
            f"{reference.JUDGE_ACCEPTED:,}",
        ],
        ["acceptance rate", f"{judge.rate:.1%}" if judge else "-", f"{reference.JUDGE_ACCEPTANCE_RATE:.1%}"],
        ["OpenOrca rows translated by the teacher", m.number(teacher, 0), f"{reference.TEACHER_ROWS:,}"],
        [
            "bilingual examples (train + held-out)",
            m.number(_examples(bilingual), 0),
            f"~{reference.BILINGUAL_EXAMPLES:,}",
        ],
        [
            "Arabic instruction corpus rows",
            m.number(facts.corpus_rows(funnel_rows, corpus), 0),
            f"~{reference.CORPUS_SAMPLES:,}",
        ],
    ]
    where = m.note(f"judge figures from {judge.where}" if judge else "the judge did not run")
    return m.section(
        "judge",
        "Judge, bilingual set and corpus, beside the report's",
        m.table("judge", ["figure", "this run", "the report"], rows) + where,
    )


def _examples(bilingual: dict[str, float]) -> int | None:
    if "train_examples" not in bilingual:
        return None
    return int(bilingual["train_examples"] + bilingual.get("heldout_examples", 0))


def fp8_section(snapshot: Snapshot) -> str:
    """The FP8 teacher's validation: quality against the source model, size, warm speed and speedup."""
    run = snapshot.latest().get("validate_fp8")
    quant = facts.prefixed(run, "quant")
    if run is None or not quant:
        return m.section(
            "fp8", "FP8 teacher validation", m.note("validate_fp8 did not run or logged no figures")
        )
    rows = [
        [key, m.figure(value), f"~{reference.FP8_SPEEDUP:g}x" if key == "speedup" else ""]
        for key, value in quant.items()
        if key != "report_speedup"
    ]
    device = run.params.get("quant.timing_device", "?")
    intro = f"<p>validate_fp8: {m.status(run.status)}; timed on {m.esc(device)}.</p>"
    return m.section(
        "fp8",
        "FP8 teacher validation (quant.*)",
        intro + m.table("fp8", ["metric", "this run", "the report"], rows),
    )
