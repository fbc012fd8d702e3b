"""Compile a preset's pipeline to KFP IR YAML (the file the Kubeflow UI and API take)."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from hala.config import load_preset, preset_file_hash
from hala_pipelines.graph import build_pipeline

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
CLUSTER_PRESETS = ("nano", "small", "paper")


def compile_preset(preset: str, output: Path) -> Path:
    """Compile ``preset`` to ``output``; returns the path written."""
    loaded = load_preset(preset)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(loaded, preset_file_hash(preset)), package_path=str(output))
    return output
