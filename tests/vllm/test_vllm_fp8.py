"""vLLM's CPU build loads the compressed-tensors FP8 teacher that hala.quantize writes, and generates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from vllm_cpu import child_env

from hala.quantize import quantize_fp8

PROBE = Path(__file__).with_name("engine_probe.py")


def probe(*model_dirs: Path) -> list[dict[str, object]]:
    """Run engine_probe.py on model folders, one engine after another in one child process."""
    done = subprocess.run(
        [sys.executable, str(PROBE), *map(str, model_dirs)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0, f"engine probe failed ({done.returncode}):\n{done.stderr[-4000:]}"
    assert len(lines) == len(model_dirs)
    return [dict(json.loads(line.removeprefix("PROBE "))) for line in lines]


@pytest.fixture(scope="module")
def fp8_teacher(teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quantize_fp8(teacher_dir, tmp_path_factory.mktemp("fp8") / "teacher-fp8")


def test_vllm_cpu_loads_and_runs_the_fp8_teacher(teacher_dir: Path, fp8_teacher: Path) -> None:
    """As the quantize stage's validation does: the source teacher, then the FP8 one, in one process.

    The child must exit by itself (``probe``'s timeout): the first engine's core is shut down at exit.
    """
    config = json.loads((fp8_teacher / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    source, report = probe(teacher_dir, fp8_teacher)
    print(f"FP8 teacher in vLLM (CPU): {report}")
    assert source["quantization"] is None
    assert report["quantization"] == "compressed-tensors"
    generations = report["generations"]
    assert isinstance(generations, list) and len(generations) == 3
    assert all(tokens == 8 and reason == "length" for _, reason, tokens in generations)
