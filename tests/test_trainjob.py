"""Multi-node SFT on Kubeflow Trainer: the TrainJob manifest, `hala cluster render`, run_trainjob.

Evidence, github.com/kubeflow/trainer at tags v2.2.0 (dc7656ad878916f526cd401f30a347574cd47877) and
v2.3.0 (658725bdae5c7e3a0854d93ac6ff492e109a22ab): pkg/apis/trainer/v1alpha1/trainjob_types.go
(spec.runtimePatches replaced podSpecOverrides/podTemplateOverrides), manifests/base/crds/
trainer.kubeflow.org_trainjobs.yaml (the fields the API server keeps; others are pruned) and
pkg/runtime/framework/plugins/jobset/jobset.go (no env in a patch of the `node` container; patches
name only the runtime's jobs and containers; manager is a domain-prefixed path).
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob
from kubernetes import client
from kubernetes.client import ApiException

from hala.config import PRESETS_DIR, RUN_AS_USER, load_preset
from hala.errors import HalaError
from hala.training.launch import (
    PATCH_MANAGER,
    TRAINER_RELEASE_ANNOTATION,
    TRAINER_RELEASES,
    run_trainjob,
    trainer_release,
    trainjob_manifest,
    trainjob_name,
)
from hala.training.render import TRANSLATOR, preset_trainjobs
from hala_pipelines.cli import main

# PodSpecPatch / ContainerPatch properties in the v2.2.0 CRD (manifests/base/crds/
# trainer.kubeflow.org_trainjobs.yaml at dc7656ad...); v2.3.0 adds terminationGracePeriodSeconds only.
V22_POD_SPEC_PATCH = {
    "affinity",
    "containers",
    "imagePullSecrets",
    "initContainers",
    "nodeSelector",
    "schedulingGates",
    "securityContext",
    "serviceAccountName",
    "tolerations",
    "volumes",
}
V22_CONTAINER_PATCH = {"env", "name", "securityContext", "volumeMounts"}


def _manifest(release: str | None = None, nodes: int = 4) -> dict[str, Any]:
    cluster = load_preset("paper").cluster
    return trainjob_manifest(
        "hala-sft-9b-abc", "kubeflow", "img@sha256:x", "/hala-work/r/job.json", nodes, cluster, release
    )


def _pod_patch(m: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(replicated job patch, pod spec patch) of hala's one runtime patch."""
    (patch,) = m["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    return job, job["template"]["spec"]["template"]["spec"]


def _paths(obj: Any, key: str, path: str = "") -> list[str]:
    """Every path in ``obj`` where a dict has ``key``."""
    if isinstance(obj, dict):
        here = [path] if key in obj else []
        return here + [p for k, v in obj.items() for p in _paths(v, key, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _paths(v, key, f"{path}[{i}]")]
    return []


def test_trainjob_manifest_for_multi_node() -> None:
    m = _manifest()
    assert (m["apiVersion"], m["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    assert m["metadata"]["annotations"][TRAINER_RELEASE_ANNOTATION] == "v2.3"
    assert m["spec"]["runtimeRef"]["name"] == "torch-distributed"
    trainer = m["spec"]["trainer"]
    assert trainer["numNodes"] == 4 and trainer["numProcPerNode"] == 8
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert trainer["command"][-1] == "/hala-work/r/job.json"
    assert "podSpecOverrides" not in m["spec"] and "podTemplateOverrides" not in m["spec"]
    job, pod = _pod_patch(m)
    assert job["name"] == "node" and [c["name"] for c in pod["containers"]] == ["node"]
    assert pod["nodeSelector"] == {"hala.ai/pool": "h100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "work", "persistentVolumeClaim": {"claimName": "hala-work"}} in pod["volumes"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    mounts = {v["name"]: v["mountPath"] for v in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"work": "/hala-work", "dshm": "/dev/shm"}
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9-]+", m["spec"]["runtimePatches"][0]["manager"])
    assert m["spec"]["runtimePatches"][0]["manager"] == PATCH_MANAGER


@pytest.mark.parametrize("release", TRAINER_RELEASES)
def test_manifest_survives_the_trainer_api_models(release: str) -> None:
    """The API models (kubeflow_trainer_api 2.3.0) keep every key: nothing would be pruned."""
    m = _manifest(release)
    assert m["metadata"]["annotations"][TRAINER_RELEASE_ANNOTATION] == release
    assert TrainerV1alpha1TrainJob.from_dict(m).to_dict() == m
    stale = copy.deepcopy(m)  # the round trip does catch a field the API no longer has
    stale["spec"]["podSpecOverrides"] = [{"targetJobs": [{"name": "node"}]}]
    assert TrainerV1alpha1TrainJob.from_dict(stale).to_dict() == m


def test_pod_patch_uses_only_fields_both_releases_keep() -> None:
    _, pod = _pod_patch(_manifest("v2.2"))
    assert set(pod) <= V22_POD_SPEC_PATCH
    assert all(set(c) <= V22_CONTAINER_PATCH for c in pod["containers"])


def test_env_is_only_in_trainer_env_and_by_reference() -> None:
    m = _manifest()
    assert _paths(m, "env") == [".spec.trainer"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in m["spec"]["trainer"]["env"]}
    assert env["HF_TOKEN"] == {"name": "hala-hf-token", "key": "token"}
    assert env["MLFLOW_TRACKING_PASSWORD"] == {"name": "hala-mlflow", "key": "password"}
    assert all(set(e) == {"name", "valueFrom"} for e in m["spec"]["trainer"]["env"])  # never a value
    assert not any(e["name"].startswith("PET_") for e in m["spec"]["trainer"]["env"])  # torch's reserved


def test_pods_meet_pod_security_restricted() -> None:
    _, pod = _pod_patch(_manifest())
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["runAsNonRoot"] is True


def test_trainer_release_is_checked() -> None:
    cluster = load_preset("paper").cluster
    assert trainer_release(cluster) == cluster.trainer_release == "v2.3"
    assert trainer_release(cluster, "v2.2") == "v2.2"
    with pytest.raises(HalaError, match=r"v2\.1 is not supported"):
        _manifest("v2.1")


def test_trainjob_name_is_the_sft_stages() -> None:
    """A TrainJob is named by the SFT task's work key, so a retried task finds the one it created."""
    from hala.stages import sft

    assert TRANSLATOR == sft.TRANSLATOR
    assert trainjob_name("1.2b", "ABCDEF123456") == "hala-sft-1-2b-abcdef12"


def _multi_node_paper(tmp_path: Path) -> Path:
    path = tmp_path / "paper-9b-2nodes.yaml"
    path.write_text(
        yaml.safe_dump(
            {"extends": str(PRESETS_DIR / "paper.yaml"), "students": {"9b": {"training": {"nodes": 2}}}}
        )
    )
    return path


def test_render_writes_the_paper_presets_trainjobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cluster", "render", "--preset", "paper", "--out", str(tmp_path / "paper")]) == 0
    assert "no multi-node SFT" in capsys.readouterr().out  # paper trains every size on one 8-GPU node
    assert not list((tmp_path / "paper").glob("*.yaml"))

    preset = _multi_node_paper(tmp_path)
    out = tmp_path / "rendered"
    argv = ["cluster", "render", "--preset", str(preset), "--out", str(out), "--trainer-release", "v2.2"]
    assert main(argv) == 0
    files = sorted(out.glob("*.yaml"))
    assert [f.name for f in files] == ["trainjob-hala-sft-9b-00000000.yaml"]
    assert str(files[0]) in capsys.readouterr().out
    m = yaml.safe_load(files[0].read_text())
    assert TrainerV1alpha1TrainJob.from_dict(m).to_dict() == m
    assert m["metadata"]["namespace"] == "hala"
    assert m["metadata"]["annotations"][TRAINER_RELEASE_ANNOTATION] == "v2.2"
    assert m["spec"]["trainer"]["numNodes"] == 2
    assert m["spec"]["trainer"]["command"][-1] == "/hala-work/sft-9b/0000000000000000/job.json"
    assert (
        m == preset_trainjobs(load_preset(preset), "hala", m["spec"]["trainer"]["image"], release="v2.2")[0]
    )


# --- run_trainjob against fakes with the real kubernetes client's signatures -------------------------


def _accepted(method: Any) -> set[str]:
    """The keyword arguments a kubernetes client method accepts (its ``all_params``)."""
    source = inspect.getsource(method)
    return set(re.findall(r"'(\w+)'", source[source.index("all_params") : source.index("for key, val")]))


DELETE_KWARGS = _accepted(client.CustomObjectsApi.delete_namespaced_custom_object_with_http_info)
EVENT_KWARGS = _accepted(client.CoreV1Api.list_namespaced_event_with_http_info)


def _status(*conditions: str, ready: int = 0, message: str = "") -> dict[str, Any]:
    return {
        "conditions": [{"type": c, "status": "True", "message": message} for c in conditions],
        "jobsStatus": [{"name": "node", "ready": ready}],
    }


RUNNING, COMPLETE = _status(ready=1), _status("Complete")


class FakeCluster:
    """The API server's TrainJobs and events; each get of a job shows its next status (the last stays)."""

    def __init__(
        self, statuses: list[dict[str, Any]], events: list[tuple[str, str, str]] | None = None
    ) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.statuses = list(statuses)
        self.events = events or []
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.refuse: ApiException | None = None

    def get(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        if name not in self.jobs:
            raise ApiException(status=404, reason="Not Found")
        if len(self.statuses) > 1:
            self.jobs[name]["status"] = self.statuses.pop(0)
        else:
            self.jobs[name]["status"] = self.statuses[0]
        return copy.deepcopy(self.jobs[name])

    def create(self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]) -> Any:
        if self.refuse:
            raise self.refuse
        name = body["metadata"]["name"]
        if name in self.jobs:
            raise ApiException(status=409, reason="Conflict")
        self.jobs[name] = copy.deepcopy(body)
        self.created.append(body)
        return body

    def delete(self, group: str, version: str, namespace: str, plural: str, name: str, **kwargs: Any) -> Any:
        assert set(kwargs) <= DELETE_KWARGS and kwargs["propagation_policy"] == "Foreground"
        self.jobs.pop(name)
        self.deleted.append(name)
        return {}

    def list_events(self, namespace: str, **kwargs: Any) -> client.CoreV1EventList:
        assert set(kwargs) <= EVENT_KWARGS and kwargs["field_selector"] == "type=Warning"
        return client.CoreV1EventList(
            items=[
                client.CoreV1Event(
                    involved_object=client.V1ObjectReference(kind=kind, name=name),
                    metadata=client.V1ObjectMeta(name=f"{name}.1"),
                    reason=reason,
                    message=f"{reason} happened",
                    type="Warning",
                )
                for kind, name, reason in self.events
            ]
        )

    def clients(self) -> tuple[Any, Any]:
        """Autospecced CustomObjectsApi and CoreV1Api: a call off the real signatures fails."""
        custom = mock.create_autospec(client.CustomObjectsApi, instance=True)
        custom.get_namespaced_custom_object.side_effect = self.get
        custom.create_namespaced_custom_object.side_effect = self.create
        custom.delete_namespaced_custom_object.side_effect = self.delete
        core = mock.create_autospec(client.CoreV1Api, instance=True)
        core.list_namespaced_event.side_effect = self.list_events
        return custom, core


def _run(fake: FakeCluster, start_timeout_s: float = 60.0) -> None:
    run_trainjob(_manifest(), poll_seconds=0, start_timeout_s=start_timeout_s, clients=fake.clients())


def test_run_trainjob_creates_and_waits_until_complete() -> None:
    fake = FakeCluster([_status(), RUNNING, RUNNING, COMPLETE])
    _run(fake)
    assert [c["metadata"]["name"] for c in fake.created] == ["hala-sft-9b-abc"] and not fake.deleted


def test_a_retry_waits_on_the_running_trainjob() -> None:
    fake = FakeCluster([RUNNING, COMPLETE])
    fake.jobs["hala-sft-9b-abc"] = _manifest()
    _run(fake)
    assert not fake.created and not fake.deleted


def test_a_retry_recreates_a_failed_trainjob() -> None:
    fake = FakeCluster([_status("Failed", message="node-0 OOMKilled"), RUNNING, COMPLETE])
    fake.jobs["hala-sft-9b-abc"] = _manifest()
    _run(fake)
    assert fake.deleted == ["hala-sft-9b-abc"] and len(fake.created) == 1


def test_pending_pods_fail_with_the_events_reason() -> None:
    events = [
        ("Pod", "hala-sft-9b-abc-node-0-0-x7k2p", "FailedScheduling"),
        ("Pod", "other-job-node-0-0-aaaaa", "BackOff"),
    ]
    fake = FakeCluster([_status()], events)
    with pytest.raises(HalaError, match="no ready pods") as caught:
        _run(fake, start_timeout_s=0)
    assert "Pod/hala-sft-9b-abc-node-0-0-x7k2p: FailedScheduling" in str(caught.value)
    assert "other-job" not in str(caught.value)
    assert fake.deleted == ["hala-sft-9b-abc"]  # it holds no nodes after the task gave up


def test_refused_pods_fail_with_the_events_reason() -> None:
    events = [("Job", "hala-sft-9b-abc-node-0", "FailedCreate")]
    fake = FakeCluster([_status()], events)
    with pytest.raises(HalaError, match="Job/hala-sft-9b-abc-node-0: FailedCreate"):
        _run(fake, start_timeout_s=0)


def test_suspended_time_does_not_count() -> None:
    fake = FakeCluster([_status("Suspended"), _status("Suspended"), COMPLETE])
    _run(fake, start_timeout_s=0)


def test_a_refused_trainjob_fails_with_the_servers_message() -> None:
    fake = FakeCluster([_status()])
    refusal = ApiException(status=422, reason="Unprocessable Entity")
    refusal.body = json.dumps({"message": "spec.runtimePatches: must not have envs for the node containers"})
    fake.refuse = refusal
    with pytest.raises(HalaError, match=r"refused: spec\.runtimePatches: must not have envs"):
        _run(fake)


def test_a_failed_trainjob_fails_the_task_with_its_events() -> None:
    fake = FakeCluster(
        [RUNNING, _status("Failed", message="jobset failed")], [("JobSet", "hala-sft-9b-abc", "X")]
    )
    with pytest.raises(HalaError, match="failed: jobset failed") as caught:
        _run(fake)
    assert "JobSet/hala-sft-9b-abc: X" in str(caught.value)
