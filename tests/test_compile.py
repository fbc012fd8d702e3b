"""The compiled cluster pipelines: committed, fresh, and valid against the KFP protobuf schemas."""

from __future__ import annotations

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
    for name, struct in executors.items():
        config = json_format.ParseDict(
            json_format.MessageToDict(struct), k8s_pb2.KubernetesExecutorConfig(), ignore_unknown_fields=False
        )
        assert config.node_selector.labels == {"hala.ai/pool": "cpu"}, name
        assert {s.secret_name for s in config.secret_as_env} == {"hala-hf-token", "hala-mlflow"}
    assert isinstance(
        platform.platforms["kubernetes"].deployment_spec.executors["exec-start-run-op"], struct_pb2.Struct
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
