"""Typed presets: one YAML file per preset, validated at load with errors that say what to fix.

A preset may start with ``extends: other.yaml``; it is then deep-merged over that file, so the
``paper`` preset is the one place that states the report's recipe and the other presets only
state what they change. In an extending preset, ``key: null`` over a mapping removes that mapping
(for example a student size the preset does not train); over a plain value it sets it to null.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hala.errors import HalaError
from hala.sources import SOURCES

PRESETS_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "presets"
PRESET_NAMES = ("tiny", "nano", "small", "paper")


class PresetError(HalaError, ValueError):
    """A preset file is missing, unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    """A model: a hub id with its revision, or ``tiny:<name>``, a tiny model built by ``hala tiny-models``."""

    id: str = Field(min_length=1)
    revision: str = "main"


class SourceSettings(_Strict):
    """Per-source switches of a preset."""

    enabled: bool = True
    limit: int | None = Field(default=None, gt=0, description="keep only the first N rows of the split")
    revision: str | None = Field(default=None, description="overrides the source module's pinned revision")


class DataConfig(_Strict):
    """Where the sources are read from and how they are sharded."""

    root: str | None = Field(
        default=None,
        description="folder holding one sub-folder of data files per source key; null reads the hub",
    )
    num_shards: int = Field(gt=0, le=4096)
    sources: dict[str, SourceSettings]

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: dict[str, SourceSettings]) -> dict[str, SourceSettings]:
        unknown = sorted(set(value) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; allowed: {sorted(SOURCES)}")
        return value


class TeacherConfig(_Strict):
    """Stage 2: the FP8 teacher translates the OpenOrca rows kept by ``data.sources.openorca.limit``."""

    model: ModelRef
    prompt: str

    @field_validator("prompt")
    @classmethod
    def _has_slot(cls, value: str) -> str:
        if "{x}" not in value:
            raise ValueError("the prompt must contain the placeholder {x} where the English text goes")
        return value


class JudgeConfig(_Strict):
    """Stage 3: a strict bilingual judge accepts or rejects the ``data.sources.opus100.limit`` OPUS pairs."""

    model: ModelRef


class TranslatorConfig(_Strict):
    """Stage 4: the lightweight translator fine-tuned on the bilingual set."""

    base: ModelRef


class StudentConfig(_Strict):
    """Stage 6-7: one HALA size: its base model and its registered model name."""

    base: ModelRef
    registered_name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")


class CorpusConfig(_Strict):
    """Stage 5: the English instruction sources translated to Arabic."""

    sources: list[str] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _instruction_sources(cls, value: list[str]) -> list[str]:
        allowed = sorted(k for k, s in SOURCES.items() if s.role == "instruction")
        bad = [k for k in value if k not in allowed]
        if bad:
            raise ValueError(f"{bad} are not instruction sources; allowed: {allowed}")
        return value


class MergeConfig(_Strict):
    """Stage 7: slerp between each fine-tune and its base."""

    method: Literal["slerp"] = "slerp"
    t: float = Field(ge=0.0, le=1.0)


class EvalConfig(_Strict):
    """Stage 8: the translator benchmark sample."""

    mmlu_questions: int = Field(gt=0)
    seed: int


class NodePool(_Strict):
    """A Kubernetes node pool: labels to select it, the taint to tolerate, accelerators per task."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    toleration_key: str | None = None
    accelerator_type: str | None = None
    accelerators: int = Field(default=0, ge=0)
    cpu: str = "2"
    memory: str = "8Gi"


class ClusterConfig(_Strict):
    """What the compiled pipeline asks of the cluster; ignored by the local runner."""

    data_pool: NodePool
    translation_pool: NodePool
    training_pool: NodePool
    hub_token_secret: str = Field(description="Kubernetes Secret holding HF_TOKEN (name only, never a value)")
    mlflow_secret: str = Field(description="Kubernetes Secret with MLflow credentials (name only)")
    retries: int = Field(default=2, ge=0, le=10, description="retries of a failed task (preemption, network)")


class TrackingConfig(_Strict):
    """MLflow experiment of the preset."""

    experiment: str = Field(min_length=1)


class Preset(_Strict):
    """A whole recipe: every stage's settings."""

    name: str
    description: str
    seed: int
    data: DataConfig
    teacher: TeacherConfig
    judge: JudgeConfig
    translator: TranslatorConfig
    corpus: CorpusConfig
    students: dict[str, StudentConfig] = Field(min_length=1)
    merge: MergeConfig
    eval: EvalConfig
    tracking: TrackingConfig
    cluster: ClusterConfig

    def enabled_sources(self) -> list[str]:
        """Source keys this preset prepares, in registry order."""
        return [k for k in SOURCES if k in self.data.sources and self.data.sources[k].enabled]

    def to_json(self) -> str:
        """Canonical JSON of the resolved preset (what a pipeline run receives)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON: equal for equal resolved presets."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if value is None and isinstance(merged.get(key), dict):
            del merged[key]  # `key: null` over a mapping removes it (a size a preset does not train)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise PresetError(f"{path}: 'extends' forms a cycle through {[str(p) for p in seen]}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PresetError(f"{path}: no such preset file; presets: {list(PRESET_NAMES)}") from None
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PresetError(f"{path}: a preset is a YAML mapping of fields, got {type(raw).__name__}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    return _deep_merge(_read_yaml(path.parent / str(parent), (*seen, path)), raw)


def _explain(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid preset ({error.error_count()} problem(s)):"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "<root>"
        hint = ""
        if item["type"] == "extra_forbidden":
            hint = "; remove it or fix its spelling"
        elif item["type"] == "missing":
            hint = "; add it"
        lines.append(f"  field '{field}': {item['msg']} (got {item.get('input')!r}){hint}")
    return "\n".join(lines)


def resolve_preset_path(name_or_path: str | Path) -> Path:
    """A preset name (``tiny``) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        return candidate.resolve()
    return PRESETS_DIR / f"{name_or_path}.yaml"


def load_preset(name_or_path: str | Path) -> Preset:
    """Load, merge and validate a preset; relative ``data.root`` is resolved against the file."""
    path = resolve_preset_path(name_or_path)
    raw = _read_yaml(path)
    root = raw.get("data", {}).get("root") if isinstance(raw.get("data"), dict) else None
    if isinstance(root, str) and not root.startswith(("hf://", "s3://", "gs://")):
        raw["data"]["root"] = str((path.parent / root).resolve())
    try:
        return Preset.model_validate(raw)
    except ValidationError as exc:
        raise PresetError(_explain(path, exc)) from None


def preset_file_hash(name_or_path: str | Path) -> str:
    """SHA-256 of the preset file's bytes (recorded for reproducible reruns)."""
    return hashlib.sha256(resolve_preset_path(name_or_path).read_bytes()).hexdigest()
