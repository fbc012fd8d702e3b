"""Rerun a recorded pipeline run exactly: same resolved preset, same images, submitted like ``hala submit``.

The parent MLflow run of every pipeline run records the resolved preset JSON (artifact ``preset.json``
or param ``preset_json``), its fingerprint and file hash, the git commit and the image references
(``hala.image.<stage>``). A rerun recompiles from those, in a fresh interpreter so the image overrides
``HALA_IMAGE_<STAGE>`` apply (the components read them at import), and checks the compiled pipeline's
preset fingerprint (in its description) against the recorded one before anything is submitted.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hala import registry
from hala.config import Preset
from hala.errors import HalaError
from hala_pipelines.kfp_client import SubmitPlan, plan_submit

GIT_COMMIT_TAG = "hala.git_commit"
FINGERPRINT_PARAM = "preset_fingerprint"
FILE_HASH_PARAM = "preset_file_sha256"


class RerunError(HalaError):
    """A run cannot be rerun exactly (nothing recorded, or the recompiled pipeline differs)."""


@dataclass(frozen=True)
class RecordedRun:
    """What a parent MLflow run recorded about the pipeline run it tracks."""

    run_id: str
    run_name: str
    preset_json: str
    preset_file_sha256: str
    git_commit: str
    images: dict[str, str]  # stage -> image reference


def _preset_json(client: MlflowClient, run_id: str, params: dict[str, str]) -> str:
    if registry.PARAM_PRESET_JSON in params:
        return params[registry.PARAM_PRESET_JSON]
    with tempfile.TemporaryDirectory(prefix="hala-rerun-") as tmp:
        try:
            path = client.download_artifacts(run_id, registry.ARTIFACT_PRESET_JSON, tmp)
        except (MlflowException, OSError):
            raise RerunError(
                f"MLflow run {run_id} records no resolved preset (artifact {registry.ARTIFACT_PRESET_JSON} "
                f"or param {registry.PARAM_PRESET_JSON}): it was not started by a hala pipeline that records "
                f"it; submit its preset with `hala submit --preset` instead"
            ) from None
        return Path(path).read_bytes().decode("utf-8")


def read_recorded_run(client: MlflowClient, run_id: str) -> RecordedRun:
    """The recorded preset, hashes, commit and images of parent run ``run_id``, checked for integrity."""
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RerunError(f"no MLflow run {run_id} at {client.tracking_uri}: {exc.message}") from None
    params, tags = dict(run.data.params), dict(run.data.tags)
    preset_json = _preset_json(client, run_id, params)
    recorded_fp = params.get(FINGERPRINT_PARAM)
    if recorded_fp and hashlib.sha256(preset_json.encode()).hexdigest() != recorded_fp:
        raise RerunError(
            f"MLflow run {run_id}: the recorded preset JSON does not match its fingerprint "
            f"{recorded_fp[:12]}; "
            f"the record was altered, rerun it by hand with `hala submit`"
        )
    images = {
        key.removeprefix(registry.PARAM_IMAGE_PREFIX): value
        for key, value in {**tags, **params}.items()
        if key.startswith(registry.PARAM_IMAGE_PREFIX)
    }
    return RecordedRun(
        run_id=run_id,
        run_name=run.info.run_name or "",
        preset_json=preset_json,
        preset_file_sha256=params.get(FILE_HASH_PARAM, ""),
        git_commit=tags.get(GIT_COMMIT_TAG, "unknown"),
        images=images,
    )


def image_env(images: dict[str, str]) -> dict[str, str]:
    """The ``HALA_IMAGE_<STAGE>`` overrides that make the compiler use the recorded images."""
    return {f"HALA_IMAGE_{stage.upper()}": ref for stage, ref in sorted(images.items())}


def commit_warning(recorded: RecordedRun, current: str) -> str | None:
    """A warning when this checkout is not the commit the run was made from (the graph comes from here)."""
    if recorded.git_commit == current:
        return None
    return (
        f"warning: MLflow run {recorded.run_id} was made from commit {recorded.git_commit}, this checkout "
        f"is {current}; the pipeline graph is compiled from this checkout, the preset and images as recorded"
    )


def image_warning(recorded: RecordedRun) -> str | None:
    """A warning when the run recorded no image references (this checkout's images are used)."""
    if recorded.images:
        return None
    return (
        f"warning: MLflow run {recorded.run_id} records no images ({registry.PARAM_IMAGE_PREFIX}<stage>); "
        f"compiling with this checkout's images (components/images.py, HALA_IMAGE_* overrides)"
    )


def compiled_defaults(package: Path) -> tuple[str, set[str]]:
    """The compiled preset's fingerprint and the container images of a compiled pipeline YAML."""
    from hala_pipelines.graph import FINGERPRINT_LABEL

    spec = next(yaml.safe_load_all(package.read_text(encoding="utf-8")))
    description = str(spec["pipelineInfo"].get("description", ""))
    fingerprint = (
        description.rsplit(f"({FINGERPRINT_LABEL} ", 1)[-1].rstrip(")")
        if FINGERPRINT_LABEL in description
        else ""
    )
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    return fingerprint, images


def compile_recorded(recorded: RecordedRun, output: Path) -> Path:
    """Compile the recorded preset with the recorded images to ``output`` and verify both."""
    with tempfile.TemporaryDirectory(prefix="hala-rerun-") as tmp:
        preset_file = Path(tmp) / "preset.yaml"  # JSON is YAML: load_preset validates it as any preset
        preset_file.write_bytes(recorded.preset_json.encode("utf-8"))
        env = {**os.environ, **image_env(recorded.images)}
        args = [
            sys.executable,
            "-m",
            "hala_pipelines.rerun",
            str(preset_file),
            recorded.preset_file_sha256,
            str(output),
        ]
        done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RerunError(f"recompiling run {recorded.run_id} failed:\n{done.stderr.strip()[-2000:]}")
    fingerprint, images = compiled_defaults(output)
    if fingerprint != hashlib.sha256(recorded.preset_json.encode()).hexdigest():
        raise RerunError(
            f"the recompiled pipeline's preset differs from the one recorded on run {recorded.run_id}; "
            f"this checkout resolves presets differently (newer fields or defaults): rerun from commit "
            f"{recorded.git_commit}"
        )
    missing = sorted(set(recorded.images.values()) - images)
    if missing:
        raise RerunError(
            f"recorded images {missing} are not used by the recompiled pipeline ({sorted(images)})"
        )
    return output


def rerun_plan(
    recorded: RecordedRun,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    namespace: str | None = None,
    now: datetime | None = None,
) -> SubmitPlan:
    """The submission of a rerun: the recorded preset compiled in, its run parameters at their defaults."""
    now = now or datetime.now(UTC)
    preset = Preset.model_validate_json(recorded.preset_json)
    name = run_name or f"{recorded.run_name or preset.name}-rerun-{now:%Y%m%d-%H%M%S}"
    return plan_submit(
        preset,
        experiment=experiment,
        run_name=name,
        namespace=namespace,
        now=now,
    )


def compile_step(recorded: RecordedRun) -> Callable[[Path], Path]:
    """A compile step for :func:`hala_pipelines.kfp_client.compiled_package`."""
    return lambda path: compile_recorded(recorded, path)


def _compile_main(argv: list[str]) -> int:
    """``python -m hala_pipelines.rerun PRESET_FILE FILE_SHA256 OUTPUT``: compile with these images."""
    from kfp import compiler

    from hala.config import load_preset
    from hala_pipelines.graph import build_pipeline

    preset_file, file_hash, output = argv
    pipeline = build_pipeline(load_preset(preset_file), file_hash)
    compiler.Compiler().compile(pipeline, package_path=output)
    return 0


if __name__ == "__main__":
    sys.exit(_compile_main(sys.argv[1:]))
