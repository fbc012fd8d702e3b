"""Where a stage's model comes from: the hub (pinned revision) or the offline tiny-model builder."""

from __future__ import annotations

from pathlib import Path

from hala.config import ModelRef
from hala.errors import HalaError

TINY_PREFIX = "tiny:"


def fetch_model(ref: ModelRef, out_dir: Path, seed: int) -> Path:
    """Materialise ``ref`` as a ``save_pretrained`` folder at ``out_dir``.

    ``tiny:<name>`` builds a tiny model offline (same seed, same bytes); anything else is a hub id
    downloaded at its revision with ``HF_TOKEN`` from the environment. Never runs remote code.
    """
    if ref.id.startswith(TINY_PREFIX):
        from hala.tiny_models import save_tiny_model

        try:
            return save_tiny_model(ref.id.removeprefix(TINY_PREFIX), out_dir, seed)
        except KeyError as exc:
            raise HalaError(f"model {ref.id!r}: {exc.args[0]}") from None
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id=ref.id, revision=ref.revision, local_dir=out_dir)
    except Exception as exc:  # hub errors: missing repo, gated model, no token, no network
        raise HalaError(
            f"model {ref.id}@{ref.revision}: download failed ({type(exc).__name__}: {exc}). "
            "Check the id and revision, and that the hala-hf-token Secret grants access."
        ) from exc
    return out_dir
