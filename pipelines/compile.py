"""Compile a preset's pipeline to KFP IR YAML (the file the Kubeflow UI and API take)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfp import compiler

from hala.config import load_preset, preset_file_hash
from hala.run_params import apply_overrides
from hala_pipelines.graph import build_pipeline

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
CLUSTER_PRESETS = ("nano", "small", "paper")


def compile_preset(preset: str, output: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """Compile ``preset`` (with dotted-key ``overrides``, as ``--set``) to ``output``; returns the path."""
    loaded = apply_overrides(load_preset(preset), overrides or {}, compile_time=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(loaded, preset_file_hash(preset)), package_path=str(output))
    return output
