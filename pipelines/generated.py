"""Components whose signature depends on the preset: the run's settings task and the corpus fan-in.

KFP reads a lightweight component's inputs and outputs from its Python signature and embeds the
function's source text in the compiled YAML. Two components need one parameter per preset entry:
the settings task has one output per task slice (so each task's input, and cache key, is only its
own settings), and the corpus task one list of shard folders per instruction source. Their source
is written here from the preset at compile time, compiled under a name registered with
:mod:`linecache` (where ``inspect.getsource``, which KFP calls, finds it), and decorated like any
other component. Nothing else is generated.
"""

from __future__ import annotations

import hashlib
import linecache
from collections.abc import Callable, Sequence

from kfp import dsl

from hala.config import Preset
from hala.run_params import RunParam
from hala.stages.settings import Slice, slices_to_json
from hala_components.images import image

_PRELUDE = "from typing import *\nfrom kfp import dsl\nfrom kfp.dsl import *\n\n"


def _component(name: str, source: str, base_image: str) -> Callable[..., dsl.PipelineTask]:
    """Compile ``source`` (defining the function ``name``) and make it a KFP component."""
    filename = f"<hala-generated-{name}-{hashlib.sha256(source.encode()).hexdigest()[:12]}>"
    text = _PRELUDE + source
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {}
    # dont_inherit: this module's postponed annotations must not reach the component (KFP reads types)
    exec(compile(text, filename, "exec", dont_inherit=True), namespace)
    function = namespace[name]
    component: Callable[..., dsl.PipelineTask] = dsl.component(
        base_image=base_image, install_kfp_package=False
    )(
        function  # type: ignore[arg-type]
    )
    return component


def _indent(lines: Sequence[str], spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in lines)


def settings_component(
    preset: Preset, params: Sequence[RunParam], slices: Sequence[Slice]
) -> Callable[..., dsl.PipelineTask]:
    """The run's first task: the compiled preset, this run's parameters and overrides, one output per slice.

    It fails (before any other task runs) on an invalid value or an override of a compile-time
    setting, naming the field.
    """
    signature = [f"{p.name}: {p.type.__name__}," for p in params]
    args = [f"{p.name}: {p.description}" for p in params]
    outputs = ", ".join(f"('{s.name}', str)" for s in slices)
    values = ", ".join(f"'{p.name}': {p.name}" for p in params)
    source = f'''def settings_op(
    overrides: str,
{_indent(signature, 4)}
    preset: dsl.Output[dsl.Artifact],
) -> NamedTuple("Settings", [{outputs}]):
    """The run's settings: the compiled preset with this run's parameters and overrides, sliced per task.

    Args:
        overrides: YAML or JSON mapping of dotted preset keys (or KEY=VALUE lines) for anything else.
{_indent(args, 8)}
        preset: the resolved preset (preset.json), recorded on the parent MLflow run.
    """
    import collections
    from pathlib import Path

    from hala.stages.run import PRESET_FILE
    from hala.stages.settings import resolve_run

    compiled = {preset.to_json()!r}
    slices = {slices_to_json(slices)!r}
    resolved, settings = resolve_run(compiled, slices, {{{values}}}, overrides)
    Path(preset.path).mkdir(parents=True, exist_ok=True)
    (Path(preset.path) / PRESET_FILE).write_text(resolved.to_json(), encoding="utf-8")
    return collections.namedtuple("Settings", list(settings))(**settings)
'''
    return _component("settings_op", source, image("data"))


def corpus_component(sources: Sequence[str]) -> Callable[..., dsl.PipelineTask]:
    """The corpus task: one list of translated shard folders per instruction source, in one pass."""
    signature = [f"{s}: dsl.Input[List[dsl.Dataset]]," for s in sources]
    args = [f"{s}: every translated shard of {s}." for s in sources]
    parts = ", ".join(f"'{s}': [a.path for a in {s}]" for s in sources)
    source = f'''def corpus_op(
    settings: str,
{_indent(signature, 4)}
    corpus: dsl.Output[dsl.Dataset],
) -> None:
    """The Arabic instruction corpus, assembled in one pass from every source's translated shards.

    Args:
        settings: this stage's settings (JSON: the sources in the order they are written).
{_indent(args, 8)}
        corpus: one parquet file per source and sources.json (rows per source).
    """
    from hala.stages import corpus as stage

    counts = stage.run(stage.CorpusSettings.parse(settings), {{{parts}}}, corpus.path)
    corpus.metadata.update({{f"{{s}}.rows": n for s, n in counts.rows.items()}})
'''
    return _component("corpus_op", source, image("data"))
