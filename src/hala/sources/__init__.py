"""The source datasets of the recipe, one module each, and the registry that names them."""

from __future__ import annotations

from hala.sources import (
    gptj_pairwise,
    hermes3,
    lamini,
    mmlu,
    mmmlu,
    openorca,
    opus100,
    realign_alpaca,
    scp116k,
    tulu3,
)
from hala.sources.base import RECORD_SCHEMA, Normalised, SourceSpec

SOURCES: dict[str, SourceSpec] = {
    m.SPEC.key: m.SPEC
    for m in (openorca, opus100, hermes3, scp116k, realign_alpaca, gptj_pairwise, lamini, tulu3, mmlu, mmmlu)
}
BY_HUB_ID: dict[str, SourceSpec] = {s.hub_id: s for s in SOURCES.values()}


def get_source(name: str) -> SourceSpec:
    """A source by key (``openorca``) or hub id (``Open-Orca/OpenOrca``)."""
    spec = SOURCES.get(name) or BY_HUB_ID.get(name)
    if spec is None:
        known = ", ".join(f"{s.key} ({s.hub_id})" for s in SOURCES.values())
        raise KeyError(f"unknown source {name!r}; known sources: {known}")
    return spec


__all__ = ["BY_HUB_ID", "RECORD_SCHEMA", "SOURCES", "Normalised", "SourceSpec", "get_source"]
