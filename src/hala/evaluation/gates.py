"""Promotion gates: the checks a merged model must pass before it may become ``champion``.

:func:`evaluate_gates` compares the merged model with its base on the evaluation tasks, and checks
the translator's chrF++ and the benchmark contamination when they are given; :func:`record_verdict`
writes the verdict on the MLflow model version (``hala.gate.verdict``, ``hala.gate.reasons``), where
``hala promote`` reads it. Scores are points on a 0-100 scale; contamination is a fraction (0-1).

A boundary value passes: a gain equal to the minimum, a drop equal to the maximum, a chrF++ equal to
the minimum, a contamination equal to the maximum (compared with a 1e-9 tolerance, so 0.1 + 0.2 is
0.3). A missing or non-finite score fails its check.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hala.config import GateConfig
from hala.errors import HalaError
from hala.registry import GATE_FAIL, GATE_PASS, TAG_GATE_REASONS, TAG_GATE_VERDICT

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

AVERAGE = "average"
TOLERANCE = 1e-9
MAX_REASONS_CHARS = 90_000  # the registry caps a tag value at 100,000 characters


class GateInputError(HalaError, ValueError):
    """The scores given to the gates lack the merged or base model."""


@dataclass
class GateVerdict:
    """The outcome: ``passed``, why not (``reasons``), and which checks ran or were skipped."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """``pass`` or ``fail``, the value of the ``hala.gate.verdict`` tag."""
        return GATE_PASS if self.passed else GATE_FAIL


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _average(scores: Mapping[str, float]) -> float:
    """The ``average`` entry, else the mean of the task scores."""
    if AVERAGE in scores:
        return float(scores[AVERAGE])
    tasks = [float(v) for k, v in scores.items() if k != AVERAGE]
    return sum(tasks) / len(tasks) if tasks else math.nan


def _check_average(cfg: GateConfig, merged: Mapping[str, float], base: Mapping[str, float]) -> list[str]:
    m, b = _average(merged), _average(base)
    if not (_finite(m) and _finite(b)):
        return [f"average: merged {m} vs base {b}: not a finite score"]
    gain, need = m - b, cfg.min_average_gain_over_base
    if gain < need - TOLERANCE:
        return [f"average: merged {m:.2f} vs base {b:.2f}, gain {gain:+.2f} points < required {need:+.2f}"]
    return []


def _check_tasks(cfg: GateConfig, merged: Mapping[str, float], base: Mapping[str, float]) -> list[str]:
    reasons = []
    for task in sorted(k for k in base if k != AVERAGE):
        b, m = float(base[task]), merged.get(task)
        if m is None:
            reasons.append(f"task {task}: missing from the merged model's scores (base {b:.2f})")
        elif not (_finite(float(m)) and _finite(b)):
            reasons.append(f"task {task}: merged {m} vs base {b}: not a finite score")
        elif b - float(m) > cfg.max_task_drop + TOLERANCE:
            reasons.append(
                f"task {task}: merged {float(m):.2f} vs base {b:.2f}, drop {b - float(m):.2f} points "
                f"> allowed {cfg.max_task_drop:.2f}"
            )
    return reasons


def _check_chrf(threshold: float, chrf: float) -> list[str]:
    if not _finite(chrf):
        return [f"translator chrF++: {chrf} is not a finite score (minimum {threshold:.2f})"]
    if chrf < threshold - TOLERANCE:
        return [f"translator chrF++: {chrf:.2f} < minimum {threshold:.2f}"]
    return []


def _check_contamination(threshold: float, fractions: Mapping[str, float]) -> list[str]:
    reasons = []
    for bench, fraction in sorted(fractions.items()):
        if not _finite(fraction) or fraction > threshold + TOLERANCE:
            reasons.append(f"contamination {bench}: {fraction:.4f} of items > maximum {threshold:.4f}")
    return reasons


def evaluate_gates(
    cfg: GateConfig,
    scores: Mapping[str, Mapping[str, float]],
    translator_chrf: float | None = None,
    contamination: Mapping[str, float] | None = None,
) -> GateVerdict:
    """Apply every configured gate; a check whose input is ``None`` (or whose threshold is) is skipped.

    Args:
        cfg: The thresholds.
        scores: ``{"merged": {task: points, "average": points}, "base": {...}}``; without
            ``average`` the mean of the task scores is used.
        translator_chrf: The translator's chrF++ on the MMLU/MMMLU set (points), or ``None``.
        contamination: ``{benchmark: fraction of contaminated items}``, or ``None``.
    """
    missing = [k for k in ("merged", "base") if k not in scores]
    if missing:
        raise GateInputError(f"scores lack {missing}; pass {{'merged': {{...}}, 'base': {{...}}}}")
    merged, base = scores["merged"], scores["base"]
    verdict = GateVerdict(passed=True)
    verdict.checks += ["average_gain_over_base", "max_task_drop"]
    verdict.reasons += _check_average(cfg, merged, base) + _check_tasks(cfg, merged, base)
    _gate_chrf(cfg, translator_chrf, verdict)
    if cfg.max_contamination is None:
        verdict.skipped.append("contamination: turned off (max_contamination is null)")
    elif contamination is None:
        verdict.skipped.append("contamination: no contamination report given")
    else:
        verdict.checks.append("contamination")
        verdict.reasons += _check_contamination(cfg.max_contamination, contamination)
    verdict.passed = not verdict.reasons
    return verdict


def _gate_chrf(cfg: GateConfig, chrf: float | None, verdict: GateVerdict) -> None:
    """Apply (or skip, saying why) the translator chrF++ gate to ``verdict``."""
    if cfg.min_translator_chrf is None:
        verdict.skipped.append("translator_chrf: turned off (min_translator_chrf is null)")
    elif chrf is None:
        verdict.skipped.append("translator_chrf: no translator chrF++ given")
    else:
        verdict.checks.append("translator_chrf")
        verdict.reasons += _check_chrf(cfg.min_translator_chrf, chrf)


def translator_verdict(cfg: GateConfig, chrf: float) -> GateVerdict:
    """The translator's gate: its chrF++ on the MMLU/MMMLU set against ``min_translator_chrf``."""
    verdict = GateVerdict(passed=True)
    _gate_chrf(cfg, chrf, verdict)
    verdict.passed = not verdict.reasons
    return verdict


def _reasons_json(reasons: list[str]) -> str:
    """The reasons as a JSON list, shortened to fit a registry tag when there are very many."""
    kept = list(reasons)
    text = json.dumps(kept, ensure_ascii=False)
    while len(text) > MAX_REASONS_CHARS and kept:
        kept = kept[: len(kept) // 2]
        text = json.dumps([*kept, f"... and {len(reasons) - len(kept)} more"], ensure_ascii=False)
    return text


def record_verdict(
    client_or_uri: MlflowClient | str, model_name: str, version: str | int, verdict: GateVerdict
) -> None:
    """Tag the model version with ``hala.gate.verdict`` (pass/fail) and ``hala.gate.reasons`` (JSON list)."""
    from mlflow.tracking import MlflowClient  # heavy import, only when recording

    client = (
        MlflowClient(tracking_uri=client_or_uri, registry_uri=client_or_uri)
        if isinstance(client_or_uri, str)
        else client_or_uri
    )
    client.set_model_version_tag(model_name, str(version), TAG_GATE_VERDICT, verdict.verdict)
    client.set_model_version_tag(model_name, str(version), TAG_GATE_REASONS, _reasons_json(verdict.reasons))
