"""Stage ``quantize``: the teacher compressed to FP8 dynamic with llm-compressor (report section 2.1).

The FP8 artifact is validated against its source by the next stage (:mod:`hala.stages.validate_fp8`),
on the engine that translates with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from hala.config import Preset
from hala.stages.settings import StageSettings


class QuantizeSettings(StageSettings):
    """The quantization scheme and the layers it leaves alone (the gate is ``validate_fp8``'s)."""

    scheme: Literal["FP8_DYNAMIC"]
    ignore: list[str]


def settings(preset: Preset) -> QuantizeSettings:
    """The ``quantize`` settings."""
    return QuantizeSettings(scheme=preset.quant.scheme, ignore=preset.quant.ignore)


def run(settings: QuantizeSettings, model_dir: str, out_dir: str) -> None:
    """Quantize the teacher in ``model_dir`` into ``out_dir`` (compressed-tensors FP8)."""
    import mlflow

    from hala.quantize import quantize_fp8
    from hala.stages.context import open_stage

    with open_stage("quantize", inputs=[model_dir], outputs=[out_dir]):
        quantize_fp8(Path(model_dir), Path(out_dir), ignore=settings.ignore)
        mlflow.log_params({"quant.scheme": settings.scheme, "quant.ignore": ",".join(settings.ignore)})
        mlflow.log_artifact(str(Path(out_dir) / "recipe.yaml"))
