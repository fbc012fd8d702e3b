"""LightEval's import-time downloads, made unnecessary by placeholders written once at setup.

Building LightEval's task registry imports every bundled task module, and two of them reach for the
network at import:

- ``tasks/tasks/tiny_benchmarks.py`` creates its metrics at import and each fetches
  ``tinyBenchmarks.pkl`` from raw.githubusercontent.com unless a file of that name sits beside the
  module. Offline the import raises ``requests.ConnectionError`` and no task can be loaded at all.
- ``tasks/tasks/ifeval/instructions_utils.py`` calls ``nltk.download("punkt")`` and
  ``("punkt_tab")`` unless ``nltk.data.find`` locates them (offline: an error printed, after a
  network attempt that can hang where connections are dropped rather than refused).

Both resources are only read when a tinyBenchmarks or IFEval task is scored, which this project
never does, so empty placeholders are enough: an empty ``tinyBenchmarks.pkl`` and empty
``<venv>/nltk_data/tokenizers/punkt{,_tab}`` folders (the last entries on NLTK's search path, so
real data in ``~/nltk_data`` or ``$NLTK_DATA`` still wins, and ``nltk.download`` still fills them).

``prepare_lighteval_offline()`` writes them once, after installing (``scripts/lighteval_offline.py``,
called by the Makefile and the evaluation image); the evaluation stage calls it again as a check.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from hala.errors import HalaError

TINY_BENCHMARKS_FILE = "tinyBenchmarks.pkl"
NLTK_RESOURCES = ("tokenizers/punkt", "tokenizers/punkt_tab")


def tiny_benchmarks_file() -> Path:
    """Where LightEval's ``tiny_benchmarks`` module looks for its data file (found without importing it)."""
    spec = importlib.util.find_spec("lighteval")
    if spec is None or not spec.submodule_search_locations:
        raise HalaError("lighteval is not installed; install the evaluation stack (requirements/local.txt)")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return package_dir / "tasks" / "tasks" / TINY_BENCHMARKS_FILE


def nltk_placeholder_root() -> Path:
    """The NLTK data folder inside the current environment (``sys.prefix/nltk_data``)."""
    return Path(sys.prefix) / "nltk_data"


def prepare_lighteval_offline() -> list[Path]:
    """Write the placeholders that are missing; returns the paths written (none when all exist).

    Idempotent: existing files (placeholders or real downloads) and NLTK resources found anywhere on
    NLTK's search path are left as they are.
    """
    written: list[Path] = []
    target = tiny_benchmarks_file()
    if not target.is_file():
        _write(target, written, target.touch)
    import nltk

    for resource in NLTK_RESOURCES:
        try:
            nltk.data.find(resource)
        except LookupError:
            folder = nltk_placeholder_root() / resource
            _write(folder, written, functools.partial(folder.mkdir, parents=True, exist_ok=True))
    return written


def _write(path: Path, written: list[Path], action: Callable[[], None]) -> None:
    try:
        action()
    except OSError as exc:
        raise HalaError(
            f"cannot write {path} ({exc.strerror}); run `python scripts/lighteval_offline.py` "
            "as the user that installed lighteval"
        ) from exc
    written.append(path)


def main() -> None:
    """Write the placeholders and say which (``scripts/lighteval_offline.py`` runs this after installing)."""
    written = prepare_lighteval_offline()
    print("lighteval offline placeholders:", ", ".join(map(str, written)) if written else "already in place")
