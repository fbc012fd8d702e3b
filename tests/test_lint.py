"""Style and types are part of the suite, so `make test` and CI enforce them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent
PATHS = ["src", "components", "pipelines", "tests", "bench", "scripts", "fixtures/eval"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True)


def test_ruff_check_and_format() -> None:
    check = _run(str(BIN / "ruff"), "check", *PATHS)
    assert check.returncode == 0, check.stdout
    fmt = _run(str(BIN / "ruff"), "format", "--check", *PATHS)
    assert fmt.returncode == 0, fmt.stdout


def test_mypy() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout
