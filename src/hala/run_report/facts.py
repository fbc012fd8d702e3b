"""The report's figures, drawn from a :class:`~hala.run_report.gather.Snapshot` (no MLflow calls here).

Metric names read (logged by the stages): ``<source>.read|kept|quarantined.<reason>`` on
``prepare-<source>``; ``teacher.*``, ``judge.*`` and ``corpus.<source>.*`` (``read``, ``kept``,
``quarantined.<reason>``) on the translation and judge shards; ``judge.*`` and ``bilingual.*`` on
``bilingual_set``; ``quant.*`` on ``validate_fp8``; ``eval.<variant>.<task>`` on ``report-<size>`` (points)
or ``eval.<task>`` on ``evaluate-<size>-<variant>`` (fractions; ``eval.parameters``, when logged there,
is the model's parameter count for Table 1's Params column); ``translation.*`` on
``translation_eval-<system>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from hala import registry
from hala.run_report.gather import RunInfo, Snapshot
from hala.run_report.layout import EVAL_VARIANTS, stage_detail, stage_kind

TABLE2_METRICS = ("bleu", "chrf", "rouge_l", "rouge_l_arabic", "n", "failed")
PARAMETERS = "eval.parameters"  # a model's parameter count (hala.evaluation.report.count_parameters)


# The stages that take a source's kept rows next: (name, shard group, metric prefix); "{s}" is the source.
TEACHER, JUDGE, CORPUS = "teacher", "judge", "corpus"
_NEXT = {
    TEACHER: ("teacher_translate", "teacher"),
    JUDGE: ("judge_filter", "judge"),
    CORPUS: ("corpus_translate-{s}", "corpus.{s}"),
}


@dataclass(frozen=True)
class FunnelRow:
    """One source through the pipeline: rows read and kept by prepare, then what each next stage kept.

    ``out`` holds, per next stage that took the source (``teacher``: translated by the FP8 teacher,
    ``judge``: accepted by the judge, ``corpus``: translated by the translator), the rows it kept.
    """

    source: str
    status: str  # the prepare stage's status, "NOT RUN" when it has no run
    read: int | None
    kept: int | None
    out: dict[str, int]
    quarantined: dict[str, int]  # "<stage>: <reason>" -> rows


def _int(metrics: dict[str, float], key: str) -> int | None:
    return int(metrics[key]) if key in metrics else None


def _reasons(metrics: dict[str, float], prefix: str, stage: str) -> dict[str, int]:
    """``<prefix>.quarantined.<reason>`` metrics as ``{"<stage>: <reason>": rows}``."""
    head = f"{prefix}.quarantined."
    return {f"{stage}: {k[len(head) :]}": int(v) for k, v in sorted(metrics.items()) if k.startswith(head)}


def _shards(latest: dict[str, RunInfo], group: str) -> list[RunInfo]:
    """The newest attempt of each shard run ``<group>-<index>``."""
    return [run for name, run in latest.items() if name.rsplit("-", 1)[0] == group]


def next_stages(source: str, corpus_sources: Iterable[str]) -> list[str]:
    """The stages that take a source's kept rows: the teacher (OpenOrca), the judge (OPUS-100), the corpus."""
    steps = [TEACHER] if source == "openorca" else [JUDGE] if source == "opus100" else []
    return steps + ([CORPUS] if source in corpus_sources else [])


def funnel_sources(snapshot: Snapshot) -> list[str]:
    """The sources of the run: the preset's enabled ones, then any other ``prepare-*`` run."""
    keys = snapshot.preset.enabled_sources() if snapshot.preset else []
    seen = [stage_detail(r.name) for r in snapshot.stages if stage_kind(r.name) == "prepare"]
    return keys + [k for k in dict.fromkeys(seen) if k not in keys]


def funnel(snapshot: Snapshot) -> list[FunnelRow]:
    """Rows read, kept, translated (or accepted by the judge) and quarantined by reason, per source."""
    latest = snapshot.latest()
    corpus = snapshot.preset.corpus.sources if snapshot.preset else []
    rows = []
    for source in funnel_sources(snapshot):
        prepared = latest.get(f"prepare-{source}")
        metrics = prepared.metrics if prepared else {}
        quarantined = _reasons(metrics, source, "prepare")
        out: dict[str, int] = {}
        for step in next_stages(source, corpus):
            group, prefix = (x.format(s=source) for x in _NEXT[step])
            shards = _shards(latest, group)
            if shards:
                out[step] = sum(_int(run.metrics, f"{prefix}.kept") or 0 for run in shards)
            for run in shards:
                for reason, n in _reasons(run.metrics, prefix, group.split("-")[0]).items():
                    quarantined[reason] = quarantined.get(reason, 0) + n
        rows.append(
            FunnelRow(
                source=source,
                status=prepared.status if prepared else "NOT RUN",
                read=_int(metrics, f"{source}.read"),
                kept=_int(metrics, f"{source}.kept"),
                out=out,
                quarantined=quarantined,
            )
        )
    return rows


def student_scores(snapshot: Snapshot, size: str) -> dict[str, dict[str, float]]:
    """Table 1 scores (points, 0-100) of one size by variant: the report stage's, else each evaluation's."""
    latest = snapshot.latest()
    report = latest.get(f"report-{size}")
    scores: dict[str, dict[str, float]] = {}
    for variant in EVAL_VARIANTS:
        head = f"eval.{variant}."
        from_report = {
            k[len(head) :]: v for k, v in (report.metrics if report else {}).items() if k.startswith(head)
        }
        evaluated = latest.get(f"evaluate-{size}-{variant}")
        from_eval = {
            k[len("eval.") :]: 100 * v
            for k, v in (evaluated.metrics if evaluated else {}).items()
            if k.startswith("eval.") and not k.startswith("eval.samples.") and k != PARAMETERS
        }
        if from_report or from_eval:
            scores[variant] = from_report or from_eval
    return scores


def student_parameters(snapshot: Snapshot, size: str) -> dict[str, int]:
    """Parameter counts by variant, from the ``eval.parameters`` metric of each evaluation run."""
    latest = snapshot.latest()
    runs = {v: latest.get(f"evaluate-{size}-{v}") for v in EVAL_VARIANTS}
    return {v: int(run.metrics[PARAMETERS]) for v, run in runs.items() if run and PARAMETERS in run.metrics}


def translation_results(snapshot: Snapshot) -> dict[str, dict[str, float]]:
    """Table 2 results by system from the finished ``translation_eval-<system>`` runs."""
    results = {}
    for name, run in snapshot.latest().items():
        if stage_kind(name) == "translation_eval" and run.status == "FINISHED":
            values = {k: run.metrics.get(f"translation.{k}") for k in TABLE2_METRICS}
            if all(v is not None for v in values.values()):
                results[stage_detail(name)] = {k: float(v) for k, v in values.items() if v is not None}
    return results


@dataclass(frozen=True)
class JudgeFigures:
    """The judge's verdicts over all shards, beside the report's 439,592 of ~1M (section 2.3)."""

    judged: int
    accepted: int
    where: str

    @property
    def rate(self) -> float:
        """Accepted over judged (0 when nothing was judged)."""
        return self.accepted / self.judged if self.judged else 0.0


def judge_figures(snapshot: Snapshot) -> JudgeFigures | None:
    """From ``bilingual_set`` (``judge.judged``/``judge.accepted``), else summed over the judge shards."""
    latest = snapshot.latest()
    bilingual = latest.get("bilingual_set")
    if bilingual and "judge.judged" in bilingual.metrics:
        m = bilingual.metrics
        return JudgeFigures(int(m["judge.judged"]), int(m.get("judge.accepted", 0)), "bilingual_set")
    shards = _shards(latest, "judge_filter")
    if not shards:
        return None
    judged = sum(_int(r.metrics, "judge.read") or 0 for r in shards)
    accepted = sum(_int(r.metrics, "judge.kept") or 0 for r in shards)
    return JudgeFigures(judged, accepted, f"{len(shards)} judge_filter shard run(s)")


def prefixed(run: RunInfo | None, prefix: str) -> dict[str, float]:
    """A run's metrics whose names start with ``prefix.``, without it (empty when there is no run)."""
    head = f"{prefix}."
    return {k[len(head) :]: v for k, v in sorted((run.metrics if run else {}).items()) if k.startswith(head)}


def corpus_rows(funnel_rows: list[FunnelRow], corpus_sources: Iterable[str]) -> int | None:
    """Translated rows of the Arabic instruction corpus (the report: roughly 4.5M); None if none ran."""
    wanted = set(corpus_sources)
    done = [r.out[CORPUS] for r in funnel_rows if r.source in wanted and CORPUS in r.out]
    return sum(done) if done else None


def gate_reasons(tags: dict[str, str]) -> list[str]:
    """The reasons a gate failed, from a model version's ``hala.gate.reasons`` tag (JSON list)."""
    text = tags.get(registry.TAG_GATE_REASONS, "")
    try:
        value = json.loads(text) if text else []
    except json.JSONDecodeError:
        return [text]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def lineage(snapshot: Snapshot) -> list[tuple[str, str]]:
    """What the run ran: commit, preset, fingerprint, seed, KFP run, images, packages, dataset revisions."""
    p, tags = snapshot.parent.params, snapshot.parent.tags
    rows = [
        ("MLflow parent run", f"{snapshot.parent.name} ({snapshot.parent.run_id})"),
        ("KFP run", tags.get("hala.kfp_run_id", "(not tagged)")),
        (
            "KFP run link",
            tags.get(registry.TAG_KFP_RUN_LINK, "(none: the Kubeflow UI address was not given)"),
        ),
        ("git commit", tags.get("hala.git_commit", "(not tagged)")),
        ("preset", p.get("preset", "?")),
        ("preset fingerprint", p.get("preset_fingerprint", "?")),
        ("preset file sha256", p.get("preset_file_sha256", "(not recorded)")),
        ("seed", p.get("seed", "?")),
    ]
    rows += [
        (f"image {k[len(registry.PARAM_IMAGE_PREFIX) :]}", v)
        for k, v in sorted(p.items())
        if k.startswith(registry.PARAM_IMAGE_PREFIX)
    ]
    rows += [
        (f"package {k[len('hala.version.') :]}", v)
        for k, v in sorted(tags.items())
        if k.startswith("hala.version.")
    ]
    for run in snapshot.latest().values():
        if stage_kind(run.name) == "prepare" and "hub_id" in run.params:
            rows.append(
                (
                    f"dataset {stage_detail(run.name)}",
                    f"{run.params['hub_id']} @ {run.params.get('revision', '?')}",
                )
            )
    return rows
