"""Check that every stage image's lock still resolves against the package index, without installing.

    python scripts/check_images.py [STAGE ...]      (no argument: every stage; `make check-images`)

For each stage, pip resolves ``images/<stage>/requirements.txt`` (its exact ``==`` pins, with their
dependencies) in a dry run for this interpreter, ignoring what is installed and any pip configuration
of this machine (``--isolated``: no local wheel folders, mirrors or constraint files). A stage fails
when pip finds a conflict (one pinned package requires another version of a pinned package, or a pin
is not on the index) or when the resolution needs a package the lock does not pin. The hashes stay
out of the dry run: pip would otherwise download every file to check it; ``pip install
--require-hashes`` checks them when the image is built. Exit status 1 when any stage fails.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
STAGES = ("data", "quantize", "translate", "train", "merge", "evaluate")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    """A distribution name in PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> tuple[dict[str, str], list[str]]:
    """The pins of a lock (normalised name -> version) and its requirement lines without hashes."""
    pins: dict[str, str] = {}
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("--index-url") or line.startswith("--extra-index-url"):
            lines.append(line)
            continue
        match = PIN.match(line)
        if match:
            name, extras, version = match.groups()
            pins[canonical(name)] = version
            lines.append(f"{name}{extras or ''}=={version}")
    return pins, lines


def _explanation(output: str) -> list[str]:
    """The part of pip's output that explains a failed resolution (the conflict and the errors)."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if "conflict is caused by" in ln or "ERROR" in ln), None)
    keep = lines[start:] if start is not None else lines
    return [ln for ln in keep if not ln.lstrip().startswith(("To fix", "1.", "2.", "3.", "Additionally"))][
        :30
    ]


def resolve(stage: str, timeout: float) -> list[str]:
    """Problems found resolving one stage's lock (empty when it resolves cleanly)."""
    lock = IMAGES / stage / "requirements.txt"
    if not lock.is_file():
        return [f"no lock file {lock.relative_to(ROOT)}; generate it with images/lock.sh {stage}"]
    pins, lines = read_lock(lock)
    if not pins:
        return [f"{lock.relative_to(ROOT)} pins nothing"]
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
            "--disable-pip-version-check", "--no-input", "--report", str(report),
            "-r", str(requirements),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return [f"pip did not finish resolving within {timeout:.0f} s"]
        if done.returncode != 0:
            return ["pip could not resolve the lock:", *_explanation(done.stdout + "\n" + done.stderr)]
        chosen = {
            canonical(item["metadata"]["name"]): item["metadata"]["version"]
            for item in json.loads(report.read_text(encoding="utf-8"))["install"]
        }
    problems = [
        f"resolution needs {n}=={v}, which the lock does not pin" for n, v in chosen.items() if n not in pins
    ]
    problems += [
        f"lock pins {n}=={pins[n]} but pip chose {v}" for n, v in chosen.items() if n in pins and pins[n] != v
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check the named stages (default: all); print one line per stage and each problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", metavar="STAGE", help=f"any of {', '.join(STAGES)}")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per stage")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; known: {list(STAGES)}")
    failed = 0
    for stage in args.stages or STAGES:
        start = time.monotonic()
        problems = resolve(stage, args.timeout)
        seconds = time.monotonic() - start
        print(f"{stage}: {'ok' if not problems else 'CONFLICT'} ({seconds:.0f} s)", flush=True)
        for problem in problems:
            print(f"  {stage}: {problem}", flush=True)
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
