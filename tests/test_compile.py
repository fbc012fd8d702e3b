"""The compiled cluster pipelines: committed, fresh, and valid against the KFP protobuf schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format, struct_pb2
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from hala.config import load_preset, resolve_preset_path
from hala_pipelines.compile import CLUSTER_PRESETS, COMPILED_DIR, compile_preset

# Compiling a cluster pipeline takes seconds: the component tier.
pytestmark = pytest.mark.component


def _documents(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_committed_yaml_is_not_stale(preset: str, tmp_path: Path) -> None:
    fresh = compile_preset(preset, tmp_path / f"{preset}.yaml").read_text()
    committed = COMPILED_DIR / f"{preset}.yaml"
    assert committed.exists(), f"{committed} is missing: run `make compile` and commit it"
    assert committed.read_text() == fresh, f"{committed} is stale: run `make compile` and commit it"


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_both_documents_parse_strictly(preset: str) -> None:
    pipeline_doc, platform_doc = _documents(COMPILED_DIR / f"{preset}.yaml")
    spec = json_format.ParseDict(pipeline_doc, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    platform = json_format.ParseDict(
        platform_doc, pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False
    )
    executors = platform.platforms["kubernetes"].deployment_spec.executors
    assert set(executors) == set(spec.deployment_spec.fields["executors"].struct_value.fields)
    gpu_ops = {
        "exec-quantize-op",
        "exec-validate-fp8-op",
        "exec-teacher-translate-op",
        "exec-judge-filter-op",
        "exec-corpus-translate-op",
        "exec-translation-eval-op",
        "exec-evaluate-op",
    }
    for name, struct in executors.items():
        config = json_format.ParseDict(
            json_format.MessageToDict(struct), k8s_pb2.KubernetesExecutorConfig(), ignore_unknown_fields=False
        )
        training = name.rstrip("-0123456789") == "exec-sft-op"
        gpu = name.rstrip("-0123456789") in gpu_ops or training
        pool = "h100" if training else "a100" if gpu else "cpu"
        assert config.node_selector.labels == {"hala.ai/pool": pool}, name
        assert {s.secret_name for s in config.secret_as_env} == {"hala-hf-token", "hala-mlflow"}
        if gpu:
            assert [t.key for t in config.tolerations] == ["nvidia.com/gpu"], name
            assert [(m.mount_path, m.medium) for m in config.empty_dir_mounts] == [("/dev/shm", "Memory")], (
                name
            )
            if "eval" not in name:  # evaluation keeps nothing between retries
                assert [m.mount_path for m in config.pvc_mount] == ["/hala-work"], name
        # Pod Security "restricted": every task runs as the images' non-root user
        assert (config.security_context.run_as_user, config.security_context.run_as_non_root) == (10001, True)
    assert isinstance(
        platform.platforms["kubernetes"].deployment_spec.executors["exec-start-op"], struct_pb2.Struct
    )


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_translation_tasks_request_a100s_by_tensor_parallel_size(preset: str) -> None:
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    loaded = load_preset(preset)
    executors = pipeline_doc["deploymentSpec"]["executors"]
    expected = {
        "exec-teacher-translate-op": loaded.teacher.engine.tensor_parallel_size,
        "exec-quantize-op": loaded.teacher.engine.tensor_parallel_size,
        "exec-validate-fp8-op": loaded.teacher.engine.tensor_parallel_size,
        "exec-judge-filter-op": loaded.judge.engine.tensor_parallel_size,
        "exec-corpus-translate-op": loaded.corpus.engine.tensor_parallel_size,
    }
    for name, spec in executors.items():
        count = expected.get(name.rstrip("-0123456789"))
        if name.startswith(("exec-sft-op", "exec-evaluate-op", "exec-translation-eval-op")):
            continue  # test_training_tasks_request_8_h100s_with_their_zero_config, test_evaluation_tasks
        if count is None:
            assert "accelerator" not in spec["container"].get("resources", {}), name
            continue
        accelerator = spec["container"]["resources"]["accelerator"]
        assert (accelerator["resourceType"], accelerator["resourceCount"]) == (
            "nvidia.com/gpu",
            str(count),
        ), name


def _node_pools(pipeline: Path) -> dict[str, str]:
    _, platform_doc = _documents(pipeline)
    executors = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return {name: spec["nodeSelector"]["labels"]["hala.ai/pool"] for name, spec in executors.items()}


def test_the_teacher_pool_is_a_preset_choice(tmp_path: Path) -> None:
    """paper: the report's A100s; teacher_pool: training_pool moves quantise and teacher to the H100s."""
    paper = _node_pools(COMPILED_DIR / "paper.yaml")
    assert (
        paper["exec-quantize-op"]
        == paper["exec-validate-fp8-op"]
        == paper["exec-teacher-translate-op"]
        == "a100"
    )
    raw = yaml.safe_load(resolve_preset_path("paper").read_text())
    raw["cluster"]["teacher_pool"] = "training_pool"
    raw["name"] = "paper-h100-teacher"
    variant = tmp_path / "paper-h100-teacher.yaml"
    variant.write_text(yaml.safe_dump(raw))
    moved = _node_pools(compile_preset(str(variant), tmp_path / "out.yaml"))
    assert (
        moved["exec-quantize-op"]
        == moved["exec-validate-fp8-op"]
        == moved["exec-teacher-translate-op"]
        == "h100"
    )
    assert moved["exec-judge-filter-op"] == moved["exec-corpus-translate-op"] == "a100"


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_translation_fans_out_over_shards_and_fans_in(preset: str) -> None:
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    loaded = load_preset(preset)
    components = pipeline_doc["components"]
    # each fan-out is a nested pipeline holding one loop (its settings reach the loop as its own input)
    loops = {
        f"{component}/{name}": spec
        for component, body in components.items()
        for name, spec in body.get("dag", {}).get("tasks", {}).items()
        if name.startswith("for-loop")
    }
    assert len(loops) == 2 + len(loaded.corpus.sources)  # teacher, judge, one per corpus source
    for name, task in loops.items():
        iterator = task["parameterIterator"]["items"]["raw"]
        assert json.loads(iterator) == list(range(loaded.data.num_shards)), name
        assert task["iteratorPolicy"]["parallelismLimit"] >= 1
    bilingual = components["comp-exit-handler-1"]["dag"]["tasks"]["bilingual-set-op"]
    inputs = bilingual["inputs"]["artifacts"]
    assert {"teacher", "judged"} <= set(inputs)
    assert all(
        "taskOutputArtifact" in inputs[k] or "componentInputArtifact" in inputs[k]
        for k in ("teacher", "judged")
    )


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_one_prepare_task_per_source_with_retries(preset: str) -> None:
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    inner = pipeline_doc["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    prepare = {name: t for name, t in inner.items() if name.startswith("prepare-source-op")}
    assert len(prepare) == len(load_preset(preset).enabled_sources())
    assert all(t["retryPolicy"]["maxRetryCount"] == 2 for t in prepare.values())
    root = pipeline_doc["root"]["dag"]["tasks"]
    assert root["finish-op"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_compiled_yaml_carries_no_secret_or_local_path(preset: str) -> None:
    text = (COMPILED_DIR / f"{preset}.yaml").read_text()
    assert "hf_" not in text.lower().replace("hf_token", "")
    assert "/work/" not in text and "/home/" not in text and "password:" not in text.lower()


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_training_tasks_request_8_h100s_with_their_zero_config(preset: str) -> None:
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    loaded = load_preset(preset)
    tasks = pipeline_doc["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    executors = pipeline_doc["deploymentSpec"]["executors"]
    sft = {t["taskInfo"]["name"].split()[1]: t for n, t in tasks.items() if n.startswith("sft-op")}
    expected = {"translator": loaded.translator.training} | {
        k: s.training for k, s in loaded.students.items()
    }
    assert set(sft) == set(expected)
    for role, task in sft.items():
        cfg = expected[role]
        assert task["taskInfo"]["name"] == f"sft {role} ({cfg.gpus} GPU, {cfg.deepspeed})"
        assert task["retryPolicy"]["maxRetryCount"] == 2  # resumes from its checkpoint on the work volume
        resources = executors[task["componentRef"]["name"].replace("comp-", "exec-")]["container"][
            "resources"
        ]
        assert (resources["accelerator"]["resourceType"], resources["accelerator"]["resourceCount"]) == (
            "nvidia.com/gpu",
            "8",
        )
    zero = {role: expected[role].deepspeed for role in expected}
    assert zero["translator"] == "zero2"
    assert all(zero[size] == ("zero3" if size == "9b" else "zero2") for size in loaded.students)
    # one slerp merge and one registration per student size, and the translator registered unmerged
    assert sum(n.startswith("merge-op") for n in tasks) == len(loaded.students)
    assert sum(n.startswith("register-op") for n in tasks) == len(loaded.students) + 1


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_evaluation_tasks_per_size_and_per_translating_system(preset: str) -> None:
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    loaded = load_preset(preset)
    tasks = pipeline_doc["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    executors = pipeline_doc["deploymentSpec"]["executors"]

    def gpus(task: dict) -> str:
        resources = executors[task["componentRef"]["name"].replace("comp-", "exec-")]["container"][
            "resources"
        ]
        return resources["accelerator"]["resourceCount"]

    evaluate = [t for n, t in tasks.items() if n.startswith("evaluate-op")]
    assert len(evaluate) == 3 * len(loaded.students)  # base, fine-tune, merged
    assert all(gpus(t) == str(loaded.eval.engine.tensor_parallel_size) for t in evaluate)
    systems = {
        t["taskInfo"]["name"].split()[-1]: t for n, t in tasks.items() if n.startswith("translation-eval-op")
    }
    assert set(systems) == {"translator_base", "translator", "teacher", "teacher_fp8"}
    assert gpus(systems["teacher_fp8"]) == str(loaded.teacher.engine.tensor_parallel_size)
    assert gpus(systems["translator"]) == str(loaded.corpus.engine.tensor_parallel_size)
    reports = [n for n in tasks if n.startswith("benchmark-report-op")]
    assert len(reports) == len(loaded.students) and "translation-report-op" in tasks
    assert "contamination-op" in tasks
    # the settings task first, then preflight: the MLflow run and every model fetch and source wait
    assert "settings-op" in tasks["preflight-op"]["dependentTasks"]
    assert "preflight-op" in tasks["start-op"]["dependentTasks"]
    assert all(
        "start-op" in t["dependentTasks"]
        for n, t in tasks.items()
        if n.startswith(("fetch-model-op", "prepare-source-op"))
    )


# --- issue 12: each task gets its own settings; nothing per run in a cache key; typed run parameters ---


def _all_tasks(pipeline_doc: dict) -> dict[str, dict]:
    """Every container task of the pipeline, in any DAG (not the DAGs: loops, nested pipelines)."""
    components = pipeline_doc["components"]
    dags = {"root": pipeline_doc["root"]} | components
    return {
        f"{component}/{name}": task
        for component, body in dags.items()
        for name, task in body.get("dag", {}).get("tasks", {}).items()
        if "executorLabel" in components[task["componentRef"]["name"]]
    }


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_no_task_takes_a_per_run_value_but_the_run_bookkeeping(preset: str) -> None:
    """A run id, run name or UI address as an input would change every cache key of every run."""
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    per_run = ("run_name", "kfp_ui", "overrides")
    for name, task in _all_tasks(pipeline_doc).items():
        params = task.get("inputs", {}).get("parameters", {})
        text = json.dumps(params)
        assert "pipeline_job" not in text and "{{$" not in text, name
        used = {p.get("componentInputParameter") for p in params.values()}
        if name.endswith(("/start-op", "/settings-op")):
            continue  # the run's bookkeeping: never cached
        assert not used & set(per_run), name


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_every_slice_and_constant_input_stays_small(preset: str) -> None:
    """The whole preset (~6 KB) used to be every task's input; now a task gets its own slice."""
    from hala.stages.settings import slice_preset
    from hala_pipelines.graph import plan_slices

    loaded = load_preset(preset)
    slices = slice_preset(loaded, plan_slices(loaded))
    largest = max(slices, key=lambda k: len(slices[k]))
    assert len(slices[largest].encode()) < 2048, largest
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    for name, task in _all_tasks(pipeline_doc).items():
        for param in task.get("inputs", {}).get("parameters", {}).values():
            assert len(json.dumps(param).encode()) < 2048, name


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_run_parameters_are_typed_and_described(preset: str) -> None:
    from hala.run_params import run_params

    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    declared = pipeline_doc["root"]["inputDefinitions"]["parameters"]
    loaded = load_preset(preset)
    expected = {p.name: p for p in run_params(loaded)}
    assert set(declared) == set(expected) | {"overrides", "run_name", "kfp_ui"}
    kinds = {int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", str: "STRING"}
    for name, spec in declared.items():
        assert spec.get("description"), name
        if name in expected:
            assert spec["parameterType"] == kinds[expected[name].type], name
            assert spec["defaultValue"] == expected[name].default(loaded), name
    assert "preset_json" not in declared
    assert {f"sft_{k.replace('.', '_')}_learning_rate" for k in loaded.students} <= set(declared)


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_every_component_input_is_described(preset: str) -> None:
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    for name, component in pipeline_doc["components"].items():
        if "executorLabel" not in component:
            continue
        for kind in ("parameters", "artifacts"):
            for arg, spec in component.get("inputDefinitions", {}).get(kind, {}).items():
                if arg == "status":
                    continue  # PipelineTaskFinalStatus, set by KFP
                assert spec.get("description"), f"{name}.{arg}"


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_every_task_learns_its_run_from_the_pod_not_from_an_input(preset: str) -> None:
    pipeline_doc, platform_doc = _documents(COMPILED_DIR / f"{preset}.yaml")
    executors = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, config in executors.items():
        fields = {f["name"]: f["fieldPath"] for f in config.get("fieldPathAsEnv", [])}
        assert fields.get("HALA_RUN_ID") == "metadata.labels['pipeline/runid']", name
    experiment = load_preset(preset).tracking.experiment
    for name, executor in pipeline_doc["deploymentSpec"]["executors"].items():
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env.get("HALA_EXPERIMENT") == experiment, name


def _setter_error_on_a_nested_pipeline() -> str:
    """KFP's error for a resource setter called on a pipeline used as a component."""
    from kfp import dsl

    # No annotations: KFP reads them, and this module's are strings (postponed).
    @dsl.container_component
    def step():  # type: ignore[no-untyped-def]
        return dsl.ContainerSpec(image="busybox", command=["true"])

    @dsl.pipeline(name="inner")
    def inner():  # type: ignore[no-untyped-def]
        step()

    with pytest.raises(ValueError) as raised:

        @dsl.pipeline(name="outer")
        def outer():  # type: ignore[no-untyped-def]
            inner().set_cpu_request("1")

    return str(raised.value)


def test_building_the_graph_keeps_kfps_setter_check_and_message() -> None:
    """build_pipeline names a setter's caller cheaply (graph.py says why); KFP's check stays as it was."""
    from kfp import dsl

    from hala_pipelines import graph

    kfps = _setter_error_on_a_nested_pipeline()
    assert kfps.startswith("set_cpu_request can only be used on single-step components")
    with graph._setters_name_their_caller_cheaply():
        assert _setter_error_on_a_nested_pipeline() == kfps
    original = dsl.PipelineTask._ensure_container_spec_exists
    graph.build_pipeline(load_preset("tiny"))
    assert dsl.PipelineTask._ensure_container_spec_exists is original  # put back once the graph is built
