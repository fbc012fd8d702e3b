"""The stages of a pipeline run as the report sees them: names, kinds, cost categories and placement.

Every stage opens one nested MLflow run named ``<kind>-<detail>`` under the parent run (see
``hala.tracking.stage_run``): ``prepare-<source>``, ``quantize``, ``validate_fp8``,
``teacher_translate-<shard>``, ``judge_filter-<shard>``, ``bilingual_set``, ``sft-<role>``,
``register-<model name>``,
``translation_eval-<system>``, ``report-translation``, ``corpus_translate-<source>-<shard>``,
``corpus`` (assembly), ``contamination``, ``merge-<size>``, ``evaluate-<size>-<variant>`` and
``report-<size>``.
:func:`placement` mirrors where ``pipelines/graph.py`` puts each one (``pipelines/cluster.py``:
``place``, ``on_gpu_pool``, ``on_training_pool``), so wall time can be turned into GPU-hours.
"""

from __future__ import annotations

from dataclasses import dataclass

from hala.config import TRANSLATION_SYSTEMS, EngineConfig, NodePool, Preset, TrainingConfig
from hala.stages.evaluate import VARIANTS as EVAL_VARIANTS
from hala.training.launch import TRANSLATOR as TRANSLATOR_ROLE

# Cost categories: the report states training ($1,000 on 8xH100-SXM) and translation ($500 on 12xA100).
TRAINING = "training"
TRANSLATION = "translation"
EVALUATION = "evaluation"
OTHER = "other"
CATEGORIES = (TRANSLATION, TRAINING, EVALUATION, OTHER)

_CATEGORY_OF_KIND = {
    "quantize": TRANSLATION,
    "validate_fp8": TRANSLATION,
    "teacher_translate": TRANSLATION,
    "judge_filter": TRANSLATION,
    "corpus_translate": TRANSLATION,
    "sft": TRAINING,
    "evaluate": EVALUATION,
    "translation_eval": EVALUATION,
    "contamination": EVALUATION,
    "report": EVALUATION,
}


@dataclass(frozen=True)
class Placement:
    """Where a stage's pod runs: the preset's node pool (a ``cluster`` field name) and its GPUs."""

    pool: str
    gpus: int


def stage_kind(name: str) -> str:
    """The kind of a stage run from its name: the part before the first ``-`` (``sft-tiny`` -> ``sft``)."""
    return name.split("-", 1)[0]


def stage_detail(name: str) -> str:
    """What follows the kind in a stage name (``corpus_translate-lamini-1`` -> ``lamini-1``)."""
    return name.split("-", 1)[1] if "-" in name else ""


def category(name: str) -> str:
    """The cost category of a stage: translation, training, evaluation or other."""
    return _CATEGORY_OF_KIND.get(stage_kind(name), OTHER)


def expected_stages(preset: Preset) -> list[str]:
    """Every stage run a complete pipeline run of ``preset`` opens, in pipeline order."""
    shards = range(preset.data.num_shards)
    names = [f"prepare-{key}" for key in preset.enabled_sources()]
    names += ["quantize", "validate_fp8", *(f"teacher_translate-{i}" for i in shards)]
    names += [f"judge_filter-{i}" for i in shards]
    names += ["bilingual_set", f"sft-{TRANSLATOR_ROLE}", f"register-{preset.translator.registered_name}"]
    names += [f"translation_eval-{system}" for system in TRANSLATION_SYSTEMS]
    names += ["report-translation"]
    names += [f"corpus_translate-{source}-{i}" for source in preset.corpus.sources for i in shards]
    names += ["corpus", "contamination"]
    for size, student in preset.students.items():
        names += [f"sft-{size}", f"merge-{size}", f"register-{student.registered_name}"]
        names += [f"evaluate-{size}-{variant}" for variant in EVAL_VARIANTS]
        names += [f"report-{size}"]
    return names


def pool_gpus(pool: NodePool) -> int:
    """GPUs a task placed on ``pool`` requests by default (none without an accelerator type)."""
    return pool.accelerators if pool.accelerator_type else 0


def _engine_placement(preset: Preset, engine: EngineConfig, pool: str) -> Placement:
    """A generation stage: ``pool`` with one GPU per tensor-parallel rank on GPUs, else the data pool."""
    if not engine.on_gpu():
        return Placement("data_pool", pool_gpus(preset.cluster.data_pool))
    return Placement(pool, engine.tensor_parallel_size)


def _training_config(preset: Preset, role: str) -> TrainingConfig | None:
    if role == TRANSLATOR_ROLE:
        return preset.translator.training
    student = preset.students.get(role)
    return student.training if student else None


def _sft_placement(preset: Preset, role: str) -> Placement:
    """An SFT stage: its GPUs on the training pool (all nodes of a TrainJob), or CPU when ``gpus`` is 0."""
    cfg = _training_config(preset, role)
    if cfg is None or not cfg.gpus:
        return Placement("data_pool", pool_gpus(preset.cluster.data_pool))
    return Placement("training_pool", cfg.gpus * cfg.nodes)


def placement(name: str, preset: Preset) -> Placement:
    """Where the stage run ``name`` ran under ``preset``, as ``pipelines/graph.py`` places it."""
    kind, detail = stage_kind(name), stage_detail(name)
    cluster = preset.cluster
    if kind in {"quantize", "validate_fp8", "teacher_translate"}:
        return _engine_placement(preset, preset.teacher.engine, cluster.teacher_pool)
    if kind == "judge_filter":
        return _engine_placement(preset, preset.judge.engine, "translation_pool")
    if kind == "corpus_translate":
        return _engine_placement(preset, preset.corpus.engine, "translation_pool")
    if kind == "translation_eval":
        engine = preset.teacher.engine if detail.startswith("teacher") else preset.corpus.engine
        return _engine_placement(preset, engine, "translation_pool")
    if kind == "evaluate":
        return _engine_placement(preset, preset.eval.engine, "translation_pool")
    if kind == "sft":
        return _sft_placement(preset, detail)
    if kind == "merge":
        return Placement("merge_pool", pool_gpus(cluster.merge_pool))
    return Placement("data_pool", pool_gpus(cluster.data_pool))
