"""Stage ``preflight``: the tracking server, the registry, the secrets and the work volume, before any GPU.

It also refuses, before any GPU is requested, an SFT base whose chat template TRL cannot mask for
assistant-only loss. One error lists every missing piece and how to fix it.
"""

from __future__ import annotations

import functools

from hala.config import ModelRef, Preset
from hala.stages.settings import StageSettings


class PreflightSettings(StageSettings):
    """What the run will read and where it writes."""

    reads_hub: bool
    sft_bases: list[ModelRef]
    training_templates: dict[str, str | None]  # base "id@revision" -> training.training_chat_template
    work_root: str


def settings(preset: Preset) -> PreflightSettings:
    """The ``preflight`` settings."""
    from hala.models import TINY_PREFIX

    models = [preset.teacher.model, preset.judge.model, preset.translator.base]
    models += [s.base for s in preset.students.values()]
    reads_hub = (
        preset.data.root is None
        or preset.eval.data_root is None
        or any(not m.id.startswith(TINY_PREFIX) for m in models)
    )
    trainings = [(preset.translator.base, preset.translator.training)]
    trainings += [(s.base, s.training) for s in preset.students.values()]
    return PreflightSettings(
        reads_hub=reads_hub,
        sft_bases=[m for m, _ in trainings],
        training_templates={f"{m.id}@{m.revision}": t.training_chat_template for m, t in trainings},
        work_root=preset.cluster.work_root,
    )


def run(settings: PreflightSettings) -> list[str]:
    """Every check that passed; raises one error listing every failure."""
    from hala import tracking
    from hala.models import TINY_PREFIX
    from hala.preflight import hub_chat_template, required_env_for
    from hala.preflight import preflight as run_checks
    from hala.stages.context import work_root

    uri = tracking.tracking_uri()
    required = required_env_for(
        reads_hub=settings.reads_hub, tracking_auth=uri.startswith(("http://", "https://"))
    )
    # Every SFT base's chat template must be one TRL can mask for assistant-only loss (tiny models
    # carry LFM2's own template, checked by the tests).
    templates = {
        f"{m.id}@{m.revision}": functools.partial(hub_chat_template, m.id, m.revision)
        for m in settings.sft_bases
        if not m.id.startswith(TINY_PREFIX)
    }
    return run_checks(
        uri,
        required,
        [str(work_root(settings.work_root))],
        sft_templates=templates,
        sft_training_templates=settings.training_templates,
    )
