"""Container images of the stages: the one place they are named.

Each reference can be overridden at compile time with ``HALA_IMAGE_<STAGE>`` (for example
``HALA_IMAGE_DATA=registry.example.com/hala-data@sha256:...``), and the registry prefix of all of
them with ``HALA_IMAGE_REGISTRY``. The images are built from ``images/<stage>/``; until a release
pins them by digest, the references are tags of this package's version.
"""

from __future__ import annotations

import os
from importlib import metadata

STAGES = ("data", "quantize", "translate")


def _version() -> str:
    try:
        return metadata.version("hala")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def image(stage: str) -> str:
    """The image reference of a stage, after environment overrides."""
    if stage not in STAGES:
        raise KeyError(f"unknown stage image {stage!r}; known: {list(STAGES)}")
    override = os.environ.get(f"HALA_IMAGE_{stage.upper()}")
    if override:
        return override
    registry = os.environ.get("HALA_IMAGE_REGISTRY", "ghcr.io/hala-mlops")
    return f"{registry}/hala-{stage}:{_version()}"
