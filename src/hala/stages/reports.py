"""What the two report stages share: the table as markdown with the verdict, and version metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hala.evaluation.gates import GateVerdict
from hala.evaluation.report import Table


@dataclass(frozen=True)
class ReportOutcome:
    """A report stage's table (and its markdown with the gate verdict under it), verdict and files."""

    table: Table
    markdown: str
    verdict: str
    reasons: list[str]
    paths: dict[str, str]


def outcome(table: Table, verdict: GateVerdict, paths: dict[str, Path], model: str) -> ReportOutcome:
    """The markdown of a report: the table, then the gate verdict on the model version."""
    why = f": {'; '.join(verdict.reasons)}" if verdict.reasons else ""
    markdown = (
        paths["markdown"].read_text(encoding="utf-8")
        + f"\n**Gate verdict on {model}: {verdict.verdict}**{why}\n"
    )
    paths_text = {k: str(p) for k, p in paths.items()}
    return ReportOutcome(table, markdown, verdict.verdict, list(verdict.reasons), paths_text)


def tag_version_metrics(name: str, version: str, metrics: dict[str, float]) -> None:
    """Key metrics as model version tags (what `hala models` lists)."""
    from hala import tracking

    client = tracking.registry_client()
    for key, value in metrics.items():
        client.set_model_version_tag(name, version, key, f"{value:.2f}")
