"""Stage settings: the slice of a preset each task receives, and the run's resolution of them.

At compile time the graph names one slice per task (:class:`Slice`: a stage and its identity, such
as the source or the student size); the run's first task applies the run parameters and overrides
to the compiled preset and hands each task only its slice, as canonical JSON. A task's cache key
then changes only when a setting it uses changes.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hala.config import Preset
from hala.errors import HalaError

# stage key -> module under hala.stages that defines `settings(preset, **identity)`
STAGE_MODULES = {
    "preflight": "preflight",
    "fetch": "fetch",
    "prepare": "prepare",
    "quantize": "quantize",
    "validate_fp8": "validate_fp8",
    "teacher_translate": "teacher",
    "judge_filter": "judge",
    "bilingual_set": "bilingual",
    "corpus_translate": "corpus_translate",
    "corpus": "corpus",
    "sft": "sft",
    "merge": "merge",
    "register": "register",
    "evaluate": "evaluate",
    "contamination": "contamination",
    "translation_eval": "translation_eval",
    "benchmark_report": "benchmark_report",
    "translation_report": "translation_report",
}


class StageSettings(BaseModel):
    """Base of every stage's settings: strict, frozen, canonical JSON in and out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): equal settings give equal task inputs, so equal cache keys."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)

    @classmethod
    def parse(cls, text: str) -> Self:
        """Settings from a task input; a clear error naming the stage and the field otherwise."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise HalaError(f"{cls.__name__}: invalid settings from the pipeline: {exc}") from None


S = TypeVar("S", bound=StageSettings, covariant=True)


class Slicer(Protocol[S]):
    """A stage module's ``settings(preset, **identity)``."""

    def __call__(self, preset: Preset, /, **identity: str) -> S:
        """The stage's settings from a resolved preset."""
        ...


@dataclass(frozen=True)
class Slice:
    """One task's settings: the stage, its identity (source, size, system ...) and its output name."""

    name: str
    stage: str
    identity: dict[str, str] = field(default_factory=dict)

    def settings(self, preset: Preset) -> StageSettings:
        """The task's settings from a resolved preset."""
        module = importlib.import_module(f"hala.stages.{STAGE_MODULES[self.stage]}")
        slicer: Slicer[StageSettings] = module.settings
        return slicer(preset, **self.identity)


def slice_preset(preset: Preset, slices: Sequence[Slice]) -> dict[str, str]:
    """Each slice's settings JSON, by slice name."""
    return {s.name: s.settings(preset).to_json() for s in slices}


def slices_from_json(text: str) -> list[Slice]:
    """Slices as the settings task receives them (embedded at compile time)."""
    return [Slice(**item) for item in json.loads(text)]


def slices_to_json(slices: Sequence[Slice]) -> str:
    """Slices as JSON, for embedding in the settings task."""
    return json.dumps([{"name": s.name, "stage": s.stage, "identity": s.identity} for s in slices])


def resolve_run(
    preset_json: str, slices_json: str, params: Mapping[str, Any], overrides: str
) -> tuple[Preset, dict[str, str]]:
    """What a run executes: the compiled preset with its run parameters and overrides, sliced."""
    from hala.run_params import resolve

    preset = resolve(Preset.model_validate_json(preset_json), params, overrides)
    return preset, slice_preset(preset, slices_from_json(slices_json))
