"""Run parameters: what an operator changes between runs, as typed pipeline parameters and overrides.

The compiled pipeline exposes a few typed, stage-prefixed parameters (row limits, learning rates and
epochs, ``merge_t``, the translator benchmark's size, the seed, the promotion gates) and one
``overrides`` parameter (a YAML or JSON mapping of dotted preset keys, or ``KEY=VALUE`` lines) for
anything else. ``hala run --set KEY=VALUE`` and ``hala submit --set`` take the same dotted keys.

Settings that fix the graph's shape (shard counts, which sources and sizes exist, GPU counts, the
cluster) are compile-time only: overriding one in a run fails at the run's first task, naming the
field and saying to recompile.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from hala.config import Preset, PresetError

ParamType = type[int] | type[float] | type[str]


@dataclass(frozen=True)
class RunParam:
    """One typed pipeline parameter and the preset key it sets."""

    name: str
    type: ParamType
    key: str  # dotted preset key
    description: str
    off: int | float | None = None  # the value that stands for the setting's null (a row limit's 0: all)

    def default(self, preset: Preset) -> int | float | str:
        """The compiled preset's value (its null as :attr:`off`)."""
        value = get_dotted(preset.model_dump(mode="json"), self.key)
        if value is None:
            value = self.off
        return self.type(value)

    def preset_value(self, value: object) -> object:
        """The preset value a parameter value stands for (:attr:`off` is null)."""
        return None if self.off is not None and value == self.off else value


def _identifier(key: str) -> str:
    return key.replace(".", "_").replace("-", "_")


def run_params(preset: Preset) -> list[RunParam]:
    """The typed run parameters of a preset's pipeline, in the order the Kubeflow UI lists them."""
    params = [
        RunParam("seed", int, "seed", "seed of every stage that samples or shuffles"),
        *(
            RunParam(
                f"data_{key}_limit",
                int,
                f"data.sources.{key}.limit",
                f"prepare {key}: keep only the first N rows of the split (0: every row)",
                off=0,
            )
            for key in preset.enabled_sources()
        ),
        RunParam(
            "translator_learning_rate",
            float,
            "translator.training.learning_rate",
            "translator SFT: peak learning rate",
        ),
        RunParam("translator_epochs", float, "translator.training.epochs", "translator SFT: epochs"),
    ]
    for size in preset.students:
        prefix, key = f"sft_{_identifier(size)}", f"students.{size}.training"
        params += [
            RunParam(f"{prefix}_learning_rate", float, f"{key}.learning_rate", f"SFT {size}: peak LR"),
            RunParam(f"{prefix}_epochs", float, f"{key}.epochs", f"SFT {size}: epochs"),
        ]
    gates = "eval.gates"
    params += [
        RunParam("merge_t", float, "merge.t", "slerp: interpolation factor (0 is the base)"),
        RunParam("eval_mmlu_questions", int, "eval.mmlu_questions", "Table 2: MMLU questions sampled"),
        RunParam(
            "gate_min_average_gain",
            float,
            f"{gates}.min_average_gain_over_base",
            "promotion gate: the merged model's average minus its base's must reach this (points)",
        ),
        RunParam(
            "gate_max_task_drop",
            float,
            f"{gates}.max_task_drop",
            "promotion gate: no benchmark may fall more than this below the base (points)",
        ),
        RunParam(
            "gate_min_translator_chrf",
            float,
            f"{gates}.min_translator_chrf",
            "promotion gate: the translator's chrF++ on Table 2 must reach this (-1: no check)",
            off=-1.0,
        ),
        RunParam(
            "gate_max_contamination",
            float,
            f"{gates}.max_contamination",
            "promotion gate: no benchmark may share n-grams with training data above this fraction "
            "(-1: no check)",
            off=-1.0,
        ),
    ]
    return params


# Settings that fix the compiled graph (or what it asks of the cluster): never run-time overrides.
COMPILE_TIME_KEYS = (
    "name",
    "data.num_shards",
    "data.root",
    "data.sources.*.enabled",
    "corpus.sources",
    "students.*.base.*",
    "*.engine.kind",
    "*.engine.parallelism",
    "*.engine.tensor_parallel_size",
    "*.training.gpus",
    "*.training.nodes",
    "*.training.deepspeed",
    "eval.data_root",
    "tracking.*",
    "cluster.*",
)


def is_compile_time(key: str) -> bool:
    """Whether a dotted key fixes the graph's shape (only a recompile may change it)."""
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in COMPILE_TIME_KEYS)


def flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{dotted}.")
        else:
            flat[dotted] = value
    return flat


def shape(preset: Preset) -> dict[str, Any]:
    """The compile-time settings of a preset, by dotted key."""
    return {k: v for k, v in flatten(preset.model_dump(mode="json")).items() if is_compile_time(k)}


def _path(raw: Mapping[str, Any], key: str) -> list[str]:
    """The mapping keys a dotted key walks through; a key may itself hold dots (a size such as ``1.2b``)."""
    parts, path, node = key.split("."), [], raw
    while parts:
        for n in range(len(parts), 0, -1):  # the longest run of parts that names a key here
            name = ".".join(parts[:n])
            if isinstance(node, Mapping) and name in node:
                path.append(name)
                node, parts = node[name], parts[n:]
                break
        else:
            where = ".".join(path) or "the preset"
            raise PresetError(f"override {key!r}: {where} has no field {parts[0]!r}; check the spelling")
    return path


def get_dotted(raw: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key of a nested mapping."""
    node: Any = raw
    for name in _path(raw, key):
        node = node[name]
    return node


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key of a nested mapping; the key must exist."""
    *parents, last = _path(raw, key)
    node: Any = raw
    for name in parents:
        node = node[name]
    node[last] = value


def parse_overrides(text: str) -> dict[str, Any]:
    """Dotted keys and values from a YAML/JSON mapping or ``KEY=VALUE`` lines (values read as YAML)."""
    text = text.strip()
    if not text:
        return {}
    if "=" in text.splitlines()[0] and not text.lstrip().startswith("{"):
        pairs = [line.split("=", 1) for line in text.splitlines() if line.strip()]
        bad = [line for line in pairs if len(line) != 2 or not line[0].strip()]
        if bad:
            raise PresetError(f"overrides: {bad[0]!r} is not KEY=VALUE")
        return {k.strip(): yaml.safe_load(v) for k, v in pairs}
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PresetError(f"overrides: not YAML or JSON ({exc}); give a mapping of dotted keys") from None
    if not isinstance(loaded, dict):
        raise PresetError(f"overrides: a mapping of dotted keys is needed, got {type(loaded).__name__}")
    return {str(k): v for k, v in loaded.items()}


def apply_overrides(preset: Preset, overrides: Mapping[str, Any], *, compile_time: bool) -> Preset:
    """``preset`` with dotted-key ``overrides`` applied and validated (errors name the field).

    At run time (``compile_time=False``) a key that fixes the graph's shape is refused.
    """
    raw = copy.deepcopy(preset.model_dump(mode="json"))
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    try:
        resolved = Preset.model_validate(raw)
    except ValueError as exc:
        raise PresetError(f"overrides {json.dumps(dict(overrides), default=str)}: {exc}") from None
    if not compile_time:
        before, after = shape(preset), shape(resolved)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:
            raise PresetError(
                f"overrides change {changed}, which fix the compiled pipeline's shape and cannot change in "
                f"a run: recompile with them (`hala compile --preset {preset.name} --set KEY=VALUE`, or "
                "`hala submit --set KEY=VALUE`)"
            )
    return resolved


def resolve(preset: Preset, params: Mapping[str, Any], overrides: str) -> Preset:
    """The preset a run executes: the typed run parameters, then ``overrides``, over the compiled one."""
    known = {p.name: p for p in run_params(preset)}
    values: dict[str, Any] = {}
    for name, value in params.items():
        if name not in known:
            raise PresetError(f"run parameter {name!r} is unknown; known: {sorted(known)}")
        values[known[name].key] = known[name].preset_value(value)
    return apply_overrides(preset, {**values, **parse_overrides(overrides)}, compile_time=False)
