"""Stage images: Containerfiles, their locks, the stage extras, and the image references of images.py."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hala_components import images

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
SRC = ROOT / "src" / "hala"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")

# The hala modules each image runs (all their imports, lazy ones included, must be in its lock).
STAGE_MODULES = {
    "data": [
        "stages/context.py",
        "stages/settings.py",
        "run_params.py",
        "stages/run.py",
        "stages/preflight.py",
        "stages/fetch.py",
        "stages/prepare.py",
        "stages/bilingual.py",
        "stages/corpus.py",
        "stages/register.py",
        "stages/reports.py",
        "stages/benchmark_report.py",
        "stages/translation_report.py",
        "run_report/*.py",
        "prepare.py",
        "corpus.py",
        "tracking.py",
        "models.py",
        "bilingual.py",
        "registry.py",
        "registration.py",
        "preflight.py",
        "sources/*.py",
        "evaluation/report.py",
        "evaluation/gates.py",
    ],
    "quantize": ["stages/quantize.py", "quantize.py"],
    "translate": [
        "stages/shards.py",
        "stages/teacher.py",
        "stages/judge.py",
        "stages/corpus_translate.py",
        "stages/validate_fp8.py",
        "stages/translation_eval.py",
        "translate/*.py",
        "judge.py",
        "fp8_check.py",
        "metrics.py",
        "evaluation/translation.py",
    ],
    "train": ["stages/sft.py", "training/*.py"],
    "merge": ["stages/merge.py", "merge.py"],
    "evaluate": ["stages/evaluate.py", "stages/contamination.py", "evaluation/*.py", "metrics.py"],
}
# Import names whose distribution is not installed in the local venv (GPU-only packages).
NOT_LOCAL = {"vllm": "vllm"}


def containerfile(stage: str) -> str:
    return (IMAGES / stage / "Containerfile").read_text(encoding="utf-8")


def instructions(stage: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", containerfile(stage))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def lock_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(3)
    return pins


def extra_requirements(extra: str) -> list[Requirement]:
    """The requirements of an extra, self-references (``hala[models]``) expanded, plus the core."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for text in extras[extra]:
        req = Requirement(text)
        if req.name == "hala":
            for inner in sorted(req.extras):
                reqs += [r for r in extra_requirements(inner) if r not in reqs]
        else:
            reqs.append(req)
    return reqs


@pytest.mark.parametrize("stage", images.STAGES)
def test_every_stage_has_a_containerfile_a_lock_and_an_extra(stage: str) -> None:
    assert (IMAGES / stage / "Containerfile").is_file()
    assert (IMAGES / stage / "requirements.txt").is_file()
    assert stage in PYPROJECT["project"]["optional-dependencies"]


@pytest.mark.parametrize("stage", images.STAGES)
def test_containerfile_runs_as_a_numeric_non_root_user(stage: str) -> None:
    users = [args for word, args in instructions(stage) if word == "USER"]
    assert users, f"{stage}: no USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, f"{stage}: USER {users[-1]!r} is not a numeric non-root uid"
    assert not group or group.isdigit()


@pytest.mark.parametrize("stage", images.STAGES)
def test_containerfile_holds_no_secrets_and_fetches_nothing_by_add(stage: str) -> None:
    for word, args in instructions(stage):
        if word == "ADD":
            assert not re.search(r"https?://|git@", args), f"{stage}: ADD from a URL: {args}"
        if word in ("ENV", "ARG"):
            assert not re.search(
                r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|CREDENTIAL)", args, re.I
            ), f"{stage}: {word} {args} looks like a secret"
    assert not re.search(
        r"\b(hf_[A-Za-z0-9]{20,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})", containerfile(stage)
    )


@pytest.mark.parametrize("stage", images.STAGES)
def test_containerfile_pins_its_base_and_records_the_commit(stage: str) -> None:
    steps = instructions(stage)
    base = next(args for word, args in steps if word == "ARG" and args.startswith("BASE_IMAGE="))
    ref = base.split("=", 1)[1]
    assert re.search(r":[\w.-]+$|@sha256:[0-9a-f]{64}$", ref) and not ref.endswith(":latest"), ref
    assert ("FROM", "${BASE_IMAGE}") in steps
    assert any(w == "ARG" and a.startswith("HALA_GIT_COMMIT") for w, a in steps)
    assert ("ENV", "HALA_GIT_COMMIT=${HALA_GIT_COMMIT}") in steps


@pytest.mark.parametrize("stage", images.STAGES)
def test_containerfile_installs_exactly_its_own_lock(stage: str) -> None:
    steps = instructions(stage)
    copies = " ".join(args for word, args in steps if word == "COPY")
    assert f"images/{stage}/requirements.txt" in copies
    installs = [a for w, a in steps if w == "RUN" and "pip install" in a]
    assert any(
        "--require-hashes" in a and "--no-deps" in a and "-r /opt/hala/locks/requirements.txt" in a
        for a in installs
    ), installs
    # hala itself from the copied checkout, never resolving dependencies from the index
    assert any("--no-deps" in a and "/opt/hala" in a and "--editable" in a for a in installs)
    for other in set(images.STAGES) - {stage}:
        assert f"images/{other}/" not in copies


@pytest.mark.parametrize("stage", images.STAGES)
def test_lock_pins_every_requirement_exactly_with_hashes(stage: str) -> None:
    lock = IMAGES / stage / "requirements.txt"
    text = lock.read_text(encoding="utf-8")
    assert f"images/lock.sh {stage}" in "\n".join(text.splitlines()[:3]), "regenerate command missing"
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n", 1)[1].strip())
    assert len(entries) > 50
    for entry in entries:
        first = entry.splitlines()[0]
        assert PIN.match(first), f"{stage}: not an exact pin: {first!r}"
        assert "--hash=sha256:" in entry, f"{stage}: no hash for {first!r}"


@pytest.mark.parametrize("stage", images.STAGES)
def test_lock_satisfies_the_stage_extra(stage: str) -> None:
    pins = lock_pins(IMAGES / stage / "requirements.txt")
    assert "kfp" in pins, f"{stage}: every image runs KFP's executor"
    for req in extra_requirements(stage):
        name = canonicalize_name(req.name)
        assert name in pins, f"{stage}: {req} is not in its lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{stage}: {name}=={pins[name]} vs {req}"


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()  # import name -> distributions (slow: read once)


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and not n.startswith("hala")}


@pytest.mark.parametrize("stage", images.STAGES)
def test_lock_has_every_package_the_stage_modules_import(stage: str) -> None:
    files = sorted({f for pattern in STAGE_MODULES[stage] for f in SRC.glob(pattern)})
    missing_patterns = [p for p in STAGE_MODULES[stage] if not list(SRC.glob(p))]
    assert not missing_patterns, f"{stage}: no module matches {missing_patterns}: update STAGE_MODULES"
    if not files:
        pytest.skip(f"no hala modules for {stage} yet")
    pins = lock_pins(IMAGES / stage / "requirements.txt")
    dists = _distributions()
    missing = {}
    for path in files:
        for name in _third_party_imports(path):
            candidates = dists.get(name) or [NOT_LOCAL.get(name, name)]
            if not any(canonicalize_name(d) in pins for d in candidates):
                missing[name] = str(path.relative_to(ROOT))
    assert not missing, f"{stage}: imported but not locked: {missing}"


@pytest.mark.parametrize(
    ("stage", "packages"),
    [
        ("quantize", {"llmcompressor", "torch", "transformers", "sacrebleu"}),
        ("translate", {"vllm", "torch", "transformers"}),
        ("train", {"trl", "deepspeed", "accelerate", "peft", "torch"}),
        ("merge", {"mergekit", "torch"}),
        ("evaluate", {"lighteval", "vllm", "ray", "more-itertools", "language-data"}),
    ],
)
def test_stage_locks_carry_their_engines(stage: str, packages: set[str]) -> None:
    assert packages <= set(lock_pins(IMAGES / stage / "requirements.txt"))


def test_tested_stages_match_the_local_stack() -> None:
    local = lock_pins(ROOT / "requirements" / "local.txt")
    for stage in ("data", "quantize", "train", "merge"):
        pins = lock_pins(IMAGES / stage / "requirements.txt")
        assert pins.get("torch", "2.13.0") == "2.13.0"  # requirements/local.txt leaves torch out
        drift = {n: (v, local[n]) for n, v in pins.items() if n in local and local[n] != v}
        assert not drift, f"{stage}: differs from requirements/local.txt: {drift}"
    for stage in ("translate", "evaluate"):  # vLLM stages: the tested transformers, the compiling kfp
        pins = lock_pins(IMAGES / stage / "requirements.txt")
        assert (pins["transformers"], pins["kfp"]) == (local["transformers"], local["kfp"])


# --- images.py ---------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for stage in images.STAGES:
        monkeypatch.delenv(f"HALA_IMAGE_{stage.upper()}", raising=False)
    monkeypatch.delenv("HALA_IMAGE_REGISTRY", raising=False)
    digests = tmp_path / "digests.json"
    monkeypatch.setenv("HALA_IMAGE_DIGESTS", str(digests))
    return digests


DIGEST = "sha256:" + "ab" * 32


def test_images_default_to_version_tags(clean_env: Path) -> None:
    version = metadata.version("hala")
    assert images.all_images() == {s: f"ghcr.io/hala-mlops/hala-{s}:{version}" for s in images.STAGES}


def test_image_overrides_by_stage_and_registry(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALA_IMAGE_REGISTRY", "registry.example.com/team/")
    monkeypatch.setenv("HALA_IMAGE_TRAIN", "other.example.com/train@" + DIGEST)
    assert images.image("data").startswith("registry.example.com/team/hala-data:")
    assert images.image("train") == "other.example.com/train@" + DIGEST


def test_image_pins_digests_from_the_build_record(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text(json.dumps({"registry": "ghcr.io/x", "version": "9", "images": {"merge": DIGEST}}))
    refs = images.all_images()
    assert refs["merge"] == f"ghcr.io/x/hala-merge@{DIGEST}"
    assert refs["data"].startswith("ghcr.io/x/hala-data:")  # not built in that release: its tag
    monkeypatch.setenv("HALA_IMAGE_REGISTRY", "mirror.example.com")  # a digest holds in any mirror
    assert images.image("merge") == f"mirror.example.com/hala-merge@{DIGEST}"
    monkeypatch.setenv("HALA_IMAGE_MERGE", "pinned/by-hand:1")
    assert images.image("merge") == "pinned/by-hand:1"


def test_empty_or_absent_digest_record_means_tags(clean_env: Path) -> None:
    assert images.load_digests() == {"registry": None, "images": {}}
    clean_env.write_text("")
    assert ":" in images.image("evaluate").rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"images": {"data": "sha256:123"}}', "64 hex digits"),
        ('{"images": {"data": "latest"}}', "64 hex digits"),
        ('{"images": {"nope": "' + DIGEST + '"}}', "unknown stage"),
        ('{"images": []}', "expected"),
    ],
)
def test_bad_digest_record_fails_naming_the_file(clean_env: Path, content: str, message: str) -> None:
    clean_env.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        images.image("data")
    assert str(clean_env) in str(info.value)


def test_unknown_stage_is_refused(clean_env: Path) -> None:
    with pytest.raises(KeyError, match="known"):
        images.image("gpu")


def test_the_checkout_records_no_invented_digests() -> None:
    record = IMAGES / "digests.json"
    if record.exists():  # written only by a release build, and then well formed
        images.load_digests()


# --- scripts/check_images.py -------------------------------------------------------------------


def _check_images():
    spec = importlib.util.spec_from_file_location("check_images", ROOT / "scripts" / "check_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_images_reads_pins_without_hashes(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        "# header\n--index-url https://pypi.org/simple\n\nFoo_Bar[x]==1.0 \\\n    --hash=sha256:00\n"
        "    # via y\nbaz==2.0.post1 \\\n    --hash=sha256:11 \\\n    --hash=sha256:22\n"
    )
    pins, lines = _check_images().read_lock(lock)
    assert pins == {"foo-bar": "1.0", "baz": "2.0.post1"}
    assert lines == ["--index-url https://pypi.org/simple", "Foo_Bar[x]==1.0", "baz==2.0.post1"]
    assert _check_images().STAGES == images.STAGES
