"""The compiled cluster pipelines: committed, fresh, and valid against the KFP protobuf schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format, struct_pb2
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from hala.config import load_preset
from hala_pipelines.compile import CLUSTER_PRESETS, COMPILED_DIR, compile_preset


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
        "exec-teacher-translate-op",
        "exec-judge-filter-op",
        "exec-corpus-translate-op",
    }
    for name, struct in executors.items():
        config = json_format.ParseDict(
            json_format.MessageToDict(struct), k8s_pb2.KubernetesExecutorConfig(), ignore_unknown_fields=False
        )
        gpu = name.rstrip("-0123456789") in gpu_ops
        pool = "a100" if gpu else "cpu"
        assert config.node_selector.labels == {"hala.ai/pool": pool}, name
        assert {s.secret_name for s in config.secret_as_env} == {"hala-hf-token", "hala-mlflow"}
        if gpu:
            assert [t.key for t in config.tolerations] == ["nvidia.com/gpu"], name
            assert [(m.mount_path, m.medium) for m in config.empty_dir_mounts] == [("/dev/shm", "Memory")], (
                name
            )
            assert [m.mount_path for m in config.pvc_mount] == ["/hala-work"], name
    assert isinstance(
        platform.platforms["kubernetes"].deployment_spec.executors["exec-start-run-op"], struct_pb2.Struct
    )


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_translation_tasks_request_a100s_by_tensor_parallel_size(preset: str) -> None:
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    loaded = load_preset(preset)
    executors = pipeline_doc["deploymentSpec"]["executors"]
    expected = {
        "exec-teacher-translate-op": loaded.teacher.engine.tensor_parallel_size,
        "exec-quantize-op": loaded.teacher.engine.tensor_parallel_size,
        "exec-judge-filter-op": loaded.judge.engine.tensor_parallel_size,
        "exec-corpus-translate-op": loaded.corpus.engine.tensor_parallel_size,
    }
    for name, spec in executors.items():
        count = expected.get(name.rstrip("-0123456789"))
        if count is None:
            assert "accelerator" not in spec["container"].get("resources", {}), name
            continue
        accelerator = spec["container"]["resources"]["accelerator"]
        assert (accelerator["resourceType"], accelerator["resourceCount"]) == (
            "nvidia.com/gpu",
            str(count),
        ), name


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_translation_fans_out_over_shards_and_fans_in(preset: str) -> None:
    pipeline_doc, _ = _documents(COMPILED_DIR / f"{preset}.yaml")
    loaded = load_preset(preset)
    components = pipeline_doc["components"]
    loops = {
        name: spec
        for name, spec in components["comp-exit-handler-1"]["dag"]["tasks"].items()
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
    assert root["finish-run-op"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"


@pytest.mark.parametrize("preset", CLUSTER_PRESETS)
def test_compiled_yaml_carries_no_secret_or_local_path(preset: str) -> None:
    text = (COMPILED_DIR / f"{preset}.yaml").read_text()
    assert "hf_" not in text.lower().replace("hf_token", "")
    assert "/work/" not in text and "/home/" not in text and "password:" not in text.lower()
