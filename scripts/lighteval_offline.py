"""Prepare the installed LightEval for offline use: run once after installing (idempotent).

Usage: ``.venv/bin/python scripts/lighteval_offline.py``.
What it writes and why: ``hala.evaluation.offline``.
"""

from __future__ import annotations

from hala.evaluation.offline import main

if __name__ == "__main__":
    main()
