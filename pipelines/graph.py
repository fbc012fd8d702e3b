"""The hala pipeline graph, built from a preset (no postponed annotations: KFP reads them).

The preset fixes the graph's shape at compile time (which sources and sizes get tasks, how many
shards fan out, GPUs). Everything else reaches the tasks through the run's first task, the settings
task: it applies the run's typed parameters and ``overrides`` to the compiled preset and hands each
task only its own slice (:mod:`hala.stages.settings`). No task takes a per-run value (run ids, names,
times) unless its output depends on it; tasks find their pipeline run from the environment
(:mod:`hala.stages.context`). So KFP's cache reuses every task whose settings and inputs did not
change: an identical rerun repeats nothing but the run's bookkeeping and the report tasks.
"""

import inspect
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kfp import dsl

from hala.config import TRANSLATION_SYSTEMS, EngineConfig, NodePool, Preset, TrainingConfig, teacher_pool
from hala.run_params import RunParam, run_params
from hala.stages.evaluate import VARIANTS
from hala.stages.settings import Slice
from hala_components.data import fetch_model_op, prepare_source_op
from hala_components.evaluation import (
    benchmark_report_op,
    contamination_op,
    evaluate_op,
    translation_eval_op,
    translation_report_op,
)
from hala_components.images import all_images, image
from hala_components.run import finish_op, preflight_op, start_op
from hala_components.training import merge_op, register_op, sft_op
from hala_components.translate import (
    bilingual_set_op,
    corpus_translate_op,
    judge_filter_op,
    quantize_op,
    teacher_translate_op,
    validate_fp8_op,
)
from hala_pipelines.cluster import (
    on_gpu_pool,
    on_training_pool,
    place,
    with_run_context,
    with_secrets,
    with_work_volume,
)
from hala_pipelines.generated import corpus_component, settings_component

RUN_ONLY = ("overrides", "run_name", "kfp_ui")  # run parameters that are not preset keys
FINGERPRINT_LABEL = "compiled preset fingerprint"  # in the pipeline's description; `hala rerun` checks it


def slot(key: str) -> str:
    """A preset key (a size such as ``1.2b``) as part of a task or parameter name."""
    return key.replace(".", "_").replace("-", "_")


def plan_slices(preset: Preset) -> list[Slice]:
    """One settings slice per task of the graph, by the name the settings task outputs it under."""
    roles = ["teacher", "judge", "translator_base", *preset.students]
    slices = [
        Slice("preflight", "preflight"),
        *(Slice(f"fetch_{slot(r)}", "fetch", {"role": r}) for r in roles),
        *(Slice(f"prepare_{k}", "prepare", {"source": k}) for k in preset.enabled_sources()),
        Slice("quantize", "quantize"),
        Slice("validate_fp8", "validate_fp8"),
        Slice("teacher_translate", "teacher_translate"),
        Slice("judge_filter", "judge_filter"),
        Slice("bilingual_set", "bilingual_set"),
        Slice("sft_translator", "sft", {"role": "translator", "image": image("train")}),
        Slice("register_translator", "register", {"role": "translator"}),
        *(Slice(f"translation_eval_{s}", "translation_eval", {"system": s}) for s in TRANSLATION_SYSTEMS),
        Slice("translation_report", "translation_report"),
        *(Slice(f"corpus_translate_{k}", "corpus_translate", {"source": k}) for k in preset.corpus.sources),
        Slice("corpus", "corpus"),
        Slice("contamination", "contamination"),
    ]
    for size in preset.students:
        s = slot(size)
        slices += [
            Slice(f"sft_{s}", "sft", {"role": size, "image": image("train")}),
            Slice(f"merge_{s}", "merge", {"role": size}),
            Slice(f"register_{s}", "register", {"role": size}),
            *(Slice(f"evaluate_{s}_{v}", "evaluate", {"role": size, "variant": v}) for v in VARIANTS),
            Slice(f"benchmark_report_{s}", "benchmark_report", {"role": size}),
        ]
    return slices


def _signature(preset: Preset, params: list[RunParam]) -> inspect.Signature:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    typed = [inspect.Parameter(p.name, kind, default=p.default(preset), annotation=p.type) for p in params]
    run_only = [inspect.Parameter(name, kind, default="", annotation=str) for name in RUN_ONLY]
    return inspect.Signature([*run_only, *typed])


def _docstring(preset: Preset, params: list[RunParam]) -> str:
    lines = [
        f"The HALA recipe, preset '{preset.name}', tracked under one parent MLflow run.",
        "",
        "Args:",
        "    overrides: YAML or JSON mapping of dotted preset keys (or KEY=VALUE lines) for any other "
        "setting; keys that fix the graph's shape are refused (recompile instead).",
        "    run_name: name of the parent MLflow run (empty: MLflow picks one).",
        "    kfp_ui: the Kubeflow UI address (hala submit sets it), for a link from the MLflow run.",
        *(f"    {p.name}: {p.description}" for p in params),
    ]
    return "\n".join(lines)


@contextmanager
def _setters_name_their_caller_cheaply() -> Iterator[None]:
    """KFP's task setters (``set_cpu_request``, ``set_env_variable``...), with the caller named cheaply.

    KFP 2.17 (``PipelineTask._ensure_container_spec_exists``) names the setter for its error with
    ``inspect.stack()``, which reads the source of every frame of the stack, and for a frame of exec'd
    code (a pytest-xdist worker's, a notebook's) scans all of ``sys.modules``: ~340 calls made one paper
    compile take 8 s instead of 2 s with 4,500 modules loaded, 40 s under the test suite. The check and
    its message stay KFP's; only the caller's name comes from the calling frame alone.
    """
    task_class = dsl.PipelineTask
    original = task_class._ensure_container_spec_exists

    def ensure_container_spec_exists(self: dsl.PipelineTask) -> None:
        if self.container_spec is None:
            raise ValueError(
                f"{sys._getframe(1).f_code.co_name} can only be used on single-step components, not "
                "pipelines used as components, or special components like importers."
            )

    task_class._ensure_container_spec_exists = ensure_container_spec_exists  # type: ignore[method-assign]
    try:
        yield
    finally:
        task_class._ensure_container_spec_exists = original  # type: ignore[method-assign]


def build_pipeline(preset: Preset, preset_file_hash: str = "") -> Callable[..., object]:
    """A KFP pipeline function for ``preset`` (compile it, or call it under ``kfp.local``)."""
    with _setters_name_their_caller_cheaply():
        return _build_pipeline(preset, preset_file_hash)


def _build_pipeline(preset: Preset, preset_file_hash: str) -> Callable[..., object]:
    cluster = preset.cluster
    shards = list(range(preset.data.num_shards))
    params = run_params(preset)
    settings_op = settings_component(preset, params, plan_slices(preset))
    corpus_op = corpus_component(preset.corpus.sources)

    def tracked(task: dsl.PipelineTask) -> dsl.PipelineTask:
        return with_secrets(with_run_context(task, preset), cluster)

    def cpu(task: dsl.PipelineTask) -> dsl.PipelineTask:
        return tracked(place(task, cluster.data_pool))

    def once(task: dsl.PipelineTask) -> dsl.PipelineTask:
        """A task that runs in every run, never from the cache (bookkeeping, reports, gates)."""
        return cpu(task.set_caching_options(False))

    def gpu(task: dsl.PipelineTask, engine: EngineConfig, pool: NodePool | None = None) -> dsl.PipelineTask:
        task.set_retry(num_retries=cluster.retries, backoff_duration="60s")
        return with_work_volume(tracked(on_gpu_pool(task, cluster, engine, pool)), cluster)

    def train(task: dsl.PipelineTask, cfg: TrainingConfig) -> dsl.PipelineTask:
        task.set_retry(num_retries=cluster.retries, backoff_duration="120s")
        return with_work_volume(tracked(on_training_pool(task, cluster, cfg)), cluster)

    def fan_out(
        op: Callable[..., dsl.PipelineTask], name: str, engine: EngineConfig, pool: NodePool | None = None
    ) -> Callable[..., dsl.PipelineTask]:
        """A nested pipeline: one ``op`` task per shard, at most ``engine.parallelism`` at once.

        Nested so that the loop reads its settings from the nested pipeline's own input: KFP 2.17's
        local runner hands a loop body the loop item in place of any upstream task's output parameter.
        """

        @dsl.pipeline(name=name)
        def shards_of(
            settings: str, model: dsl.Input[dsl.Model], prepared: dsl.Input[dsl.Dataset]
        ) -> list[dsl.Dataset]:
            with dsl.ParallelFor(items=shards, parallelism=engine.parallelism, name=name) as shard:
                task = op(settings=settings, shard=shard, model=model, prepared=prepared)
                gpu(task.set_display_name(name), engine, pool)
            (output,) = task.outputs.values()
            return dsl.Collected(output)

        return shards_of

    # Nested pipelines are defined before the pipeline that calls them (KFP refuses them inside it).
    teacher_fan = fan_out(
        teacher_translate_op, "teacher-translate", preset.teacher.engine, teacher_pool(cluster)
    )
    judge_fan = fan_out(judge_filter_op, "judge-filter", preset.judge.engine)
    corpus_fans = {
        s: fan_out(corpus_translate_op, f"translate-{s}", preset.corpus.engine) for s in preset.corpus.sources
    }

    def hala_pipeline(*values: object) -> None:
        run = dict(zip(list(RUN_ONLY) + [p.name for p in params], values, strict=True))
        finish_task = once(finish_op().set_display_name("finish MLflow run and report"))
        with dsl.ExitHandler(finish_task, name="tracked-run"):
            config = settings_op(overrides=run["overrides"], **{p.name: run[p.name] for p in params})
            once(config.set_display_name("settings"))
            slices = config.outputs
            checks = preflight_op(settings=slices["preflight"])
            with_work_volume(once(checks.set_display_name("preflight")), cluster)
            start = start_op(
                preset=slices["preset"],
                run_name=run["run_name"],
                preset_file_hash=preset_file_hash,
                images=json.dumps(all_images(), sort_keys=True),
                kfp_ui=run["kfp_ui"],
            )
            once(start.set_display_name("start MLflow run")).after(checks)

            def fetch(role: str) -> dsl.PipelineTask:
                task = fetch_model_op(settings=slices[f"fetch_{slot(role)}"])
                return cpu(task.set_display_name(f"model {role}")).after(start)

            prepared = {}
            for key in preset.enabled_sources():
                task = prepare_source_op(settings=slices[f"prepare_{key}"]).after(start)
                cpu(
                    task.set_display_name(f"prepare {key}").set_retry(cluster.retries, backoff_duration="30s")
                )
                prepared[key] = task.outputs["prepared"]

            teacher_model, judge_model = fetch("teacher"), fetch("judge")
            translator_model = fetch("translator_base")
            quant = quantize_op(settings=slices["quantize"], source_model=teacher_model.outputs["model"])
            gpu(quant.set_display_name("quantize teacher FP8"), preset.teacher.engine, teacher_pool(cluster))
            validated = validate_fp8_op(
                settings=slices["validate_fp8"],
                source_model=teacher_model.outputs["model"],
                quantized=quant.outputs["quantized"],
                opus=prepared["opus100"],
            )
            gpu(
                validated.set_display_name("validate FP8 teacher"),
                preset.teacher.engine,
                teacher_pool(cluster),
            )

            teacher = teacher_fan(
                settings=slices["teacher_translate"],
                model=quant.outputs["quantized"],
                prepared=prepared["openorca"],
            ).after(validated)  # the FP8 teacher translates only once it passed its gate
            judge = judge_fan(
                settings=slices["judge_filter"],
                model=judge_model.outputs["model"],
                prepared=prepared["opus100"],
            )
            bilingual = bilingual_set_op(
                settings=slices["bilingual_set"], teacher=teacher.output, judged=judge.output
            )
            cpu(bilingual.set_display_name("bilingual set"))

            def sft(role: str, cfg: TrainingConfig, base: dsl.PipelineTask, data: object) -> dsl.PipelineTask:
                task = sft_op(settings=slices[f"sft_{slot(role)}"], base=base.outputs["model"], data=data)
                return train(task.set_display_name(f"sft {role} ({cfg.gpus} GPU, {cfg.deepspeed})"), cfg)

            def register(role: str, model: object) -> dsl.PipelineTask:
                task = register_op(settings=slices[f"register_{slot(role)}"], model=model)
                return cpu(task.set_display_name(f"register {role}"))

            translator = sft(
                "translator", preset.translator.training, translator_model, bilingual.outputs["bilingual"]
            )
            translator_version = register("translator", translator.outputs["model"])

            systems = {  # Table 2: every system that translates, on its own engine
                "translator_base": (translator_model.outputs["model"], preset.corpus.engine),
                "translator": (translator.outputs["model"], preset.corpus.engine),
                "teacher": (teacher_model.outputs["model"], preset.teacher.engine),
                "teacher_fp8": (quant.outputs["quantized"], preset.teacher.engine),
            }
            results = {}
            for system, (model, engine) in systems.items():
                task = translation_eval_op(
                    settings=slices[f"translation_eval_{system}"],
                    model=model,
                    mmlu=prepared["mmlu"],
                    mmmlu=prepared["mmmlu"],
                )
                results[system] = gpu(task.set_display_name(f"translation eval {system}"), engine)
            table2 = translation_report_op(
                settings=slices["translation_report"],
                registered=translator_version.outputs["registered"],
                fp8_check=validated.outputs["report"],
                **{s: t.outputs["result"] for s, t in results.items()},
            )
            once(table2.set_display_name("report translation (Table 2)"))

            translated = {}
            for source in preset.corpus.sources:
                translated[source] = corpus_fans[source](
                    settings=slices[f"corpus_translate_{source}"],
                    model=translator.outputs["model"],
                    prepared=prepared[source],
                ).output
            corpus = cpu(corpus_op(settings=slices["corpus"], **translated).set_display_name("corpus"))

            contamination = contamination_op(
                settings=slices["contamination"],
                corpus=corpus.outputs["corpus"],
                bilingual=bilingual.outputs["bilingual"],
                mmlu=prepared["mmlu"],
            )
            cpu(contamination.set_display_name("contamination check"))

            for size, student in preset.students.items():
                s = slot(size)
                base = fetch(size)
                finetuned = sft(size, student.training, base, corpus.outputs["corpus"])
                merged = merge_op(
                    settings=slices[f"merge_{s}"],
                    finetuned=finetuned.outputs["model"],
                    base=base.outputs["model"],
                )
                tracked(place(merged.set_display_name(f"merge {size}"), cluster.merge_pool))
                version = register(size, merged.outputs["merged"])
                models = {
                    "base": base.outputs["model"],
                    "finetuned": finetuned.outputs["model"],
                    "merged": merged.outputs["merged"],
                }
                scores = {}
                for variant, model in models.items():
                    task = evaluate_op(settings=slices[f"evaluate_{s}_{variant}"], model=model)
                    task.set_display_name(f"evaluate {size} {variant}")
                    scores[variant] = tracked(on_gpu_pool(task, cluster, preset.eval.engine))
                table1 = benchmark_report_op(
                    settings=slices[f"benchmark_report_{s}"],
                    contamination=contamination.outputs["report"],
                    registered=version.outputs["registered"],
                    **{v: t.outputs["scores"] for v, t in scores.items()},
                )
                once(table1.set_display_name(f"report {size} (Table 1)"))

    hala_pipeline.__signature__ = _signature(preset, params)  # type: ignore[attr-defined]
    hala_pipeline.__doc__ = _docstring(preset, params)
    return dsl.pipeline(
        name=f"hala-{preset.name}",
        description=f"HALA translate-and-tune recipe, preset '{preset.name}': {preset.description} "
        f"({FINGERPRINT_LABEL} {preset.fingerprint()})",
    )(hala_pipeline)
