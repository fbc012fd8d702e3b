"""Container images of the stages: the one place they are named.

A stage's reference is, first match wins:

1. ``HALA_IMAGE_<STAGE>`` from the environment, verbatim (for example
   ``HALA_IMAGE_TRAIN=registry.example.com/hala-train@sha256:...``);
2. ``<registry>/hala-<stage>@sha256:<digest>`` when ``images/digests.json`` (written by a release
   build of ``images/<stage>/Containerfile``; absent until one runs) records a digest for the stage;
3. ``<registry>/hala-<stage>:<package version>``, the tag the images are built under.

``<registry>`` is ``HALA_IMAGE_REGISTRY``, else the registry named in the digests file, else
``ghcr.io/hala-mlops``; a digest names the same image in any registry it was copied to.
``HALA_IMAGE_DIGESTS`` points at another digests file. :func:`all_images` gives every resolved
reference, for recording with a run so it can be rerun on the same images.

The digests file: ``{"registry": "ghcr.io/hala-mlops", "images": {"data": "sha256:<64 hex>", ...}}``
(other keys, such as the version and commit built, are kept for people and ignored here).
"""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from hala.config import RUN_AS_USER  # noqa: F401 - what every stage image runs as

STAGES = ("data", "quantize", "translate", "train", "merge", "evaluate")
DEFAULT_REGISTRY = "ghcr.io/hala-mlops"
DIGESTS_FILE = Path(__file__).resolve().parents[1] / "images" / "digests.json"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _version() -> str:
    try:
        return metadata.version("hala")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def _digests_path() -> Path:
    return Path(os.environ.get("HALA_IMAGE_DIGESTS") or DIGESTS_FILE)


def load_digests() -> dict[str, Any]:
    """The digests file as ``{"registry": str | None, "images": {stage: digest}}``; empty when absent.

    Raises ``ValueError`` naming the file when it is not valid JSON, names an unknown stage, or holds
    something other than a ``sha256:`` digest of 64 hex digits.
    """
    path = _digests_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"registry": None, "images": {}}
    if not text.strip():
        return {"registry": None, "images": {}}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); rewrite it or delete it") from None
    images = raw.get("images", {}) if isinstance(raw, dict) else None
    if not isinstance(images, dict):
        raise ValueError(f"{path}: expected {{'images': {{stage: 'sha256:...'}}}}, got {raw!r}")
    for stage, digest in images.items():
        if stage not in STAGES:
            raise ValueError(f"{path}: unknown stage {stage!r}; known: {list(STAGES)}")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ValueError(f"{path}: stage {stage!r} digest {digest!r} is not 'sha256:' + 64 hex digits")
    return {"registry": raw.get("registry") or None, "images": dict(images)}


def image(stage: str) -> str:
    """The image reference of a stage, after environment overrides."""
    if stage not in STAGES:
        raise KeyError(f"unknown stage image {stage!r}; known: {list(STAGES)}")
    override = os.environ.get(f"HALA_IMAGE_{stage.upper()}")
    if override:
        return override
    digests = load_digests()
    registry = os.environ.get("HALA_IMAGE_REGISTRY") or digests["registry"] or DEFAULT_REGISTRY
    registry = registry.rstrip("/")
    digest = digests["images"].get(stage)
    if digest:
        return f"{registry}/hala-{stage}@{digest}"
    return f"{registry}/hala-{stage}:{_version()}"


def all_images() -> dict[str, str]:
    """Every stage's resolved image reference, by stage (what a run should record to be rerun)."""
    return {stage: image(stage) for stage in STAGES}
