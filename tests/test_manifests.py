"""The Kubernetes manifests: rendered with kustomize, valid, restricted, secret-free, matching the presets.

Every checker below returns a list of problems; each is also run on a bad document, so a check that
could never fail would show up as a failing test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import yaml

from hala.config import PRESET_NAMES, NodePool, load_preset

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
OVERLAYS = sorted(p.parent.name for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))
TARGETS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
SECRET_TEMPLATES = MANIFESTS / "secrets"
NODEPOOLS = MANIFESTS / "nodepools" / "nodepools.yaml"
COMPILED = ROOT / "pipelines" / "compiled"
# The oldest Kubernetes minor still in wide use and the newest that kubernetes-validate ships.
K8S_VERSIONS = ["1.33", "1.37"]
POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
Doc = dict[str, Any]


# ---------------------------------------------------------------- rendering


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@cache
def render(target: str) -> tuple[Doc, ...]:
    command = _kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed (apt-get install kubectl)")
    done = subprocess.run(
        [*command, str(MANIFESTS / target)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"kustomize failed on {target}:\n{done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def _find(node: Any, key: str) -> list[Doc]:
    """Every item of every list stored under ``key`` anywhere in ``node``."""
    if isinstance(node, dict):
        found = list(node.get(key) or [])
        return found + [x for k, v in node.items() if k != key for x in _find(v, key)]
    if isinstance(node, list):
        return [x for item in node for x in _find(item, key)]
    return []


def secret_templates() -> list[Doc]:
    return [yaml.safe_load(p.read_text()) for p in sorted(SECRET_TEMPLATES.glob("*.yaml"))]


def pod_spec(doc: Doc) -> Doc | None:
    spec = doc.get("spec") or {}
    if doc["kind"] == "Pod":
        return spec
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if doc["kind"] in POD_KINDS:
        return spec["template"]["spec"]
    return None


def containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


# ---------------------------------------------------------------- checkers


def schema_problems(doc: Doc, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {str(error).splitlines()[0]}"]
    return []


def restricted_problems(doc: Doc) -> list[str]:
    """Pod Security Standard "restricted" plus requests and limits on every container."""
    pod = pod_spec(doc)
    if pod is None:
        return []
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    problems = [
        f"{where}: {field} is set" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)
    ]
    problems += [f"{where}: hostPath volume {v['name']}" for v in pod.get("volumes", []) if "hostPath" in v]
    pod_ctx = pod.get("securityContext") or {}
    for c in containers(pod):
        ctx = {**pod_ctx, **(c.get("securityContext") or {})}
        name = f"{where} container {c['name']}"
        if ctx.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if ctx.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        if (ctx.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        own = c.get("securityContext") or {}
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if own.get("privileged"):
            problems.append(f"{name}: privileged")
        caps = own.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        resources = c.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind) or {})
            if missing:
                problems.append(f"{name}: no {kind} for {sorted(missing)}")
    return problems


def secret_value_problems(doc: Doc) -> list[str]:
    if doc["kind"] != "Secret":
        return []
    return [f"Secret/{doc['metadata']['name']} carries {f}" for f in ("data", "stringData") if f in doc]


def rbac_problems(doc: Doc) -> list[str]:
    """Namespace-scoped, no wildcards, Secrets only by name and only get, no privilege-granting verbs."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    if kind in ("ClusterRole", "ClusterRoleBinding"):
        return [f"{kind}/{name}: cluster-scoped RBAC"]
    problems = []
    if kind == "RoleBinding" and doc["roleRef"]["kind"] != "Role":
        problems.append(f"RoleBinding/{name}: binds a {doc['roleRef']['kind']}")
    for rule in doc.get("rules", []) if kind == "Role" else []:
        for field in ("verbs", "resources", "apiGroups", "resourceNames"):
            if any("*" in item for item in rule.get(field, [])):
                problems.append(f"Role/{name}: wildcard in {field}")
        if {"escalate", "bind", "impersonate"} & set(rule.get("verbs", [])):
            problems.append(f"Role/{name}: privilege-granting verb in {rule['verbs']}")
        if "secrets" in rule.get("resources", []) and (
            not rule.get("resourceNames") or set(rule.get("verbs", [])) - {"get"}
        ):
            problems.append(f"Role/{name}: grants access to Secrets beyond get by resourceNames")
    return problems


def expand(value: str, env: dict[str, str]) -> str:
    """Expand ``$(VAR)`` references the way the kubelet does in command and args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def mlflow_server_params(deployment: Doc) -> dict[str, Any]:
    """Parse the container's ``mlflow server`` command line with mlflow's own CLI definition."""
    from mlflow.cli import server

    container = next(c for c in pod_spec(deployment)["containers"] if c["name"] == "mlflow")
    namespace = deployment["metadata"].get("namespace", "default")
    env = {}
    for var in container.get("env", []):
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace"
            env[var["name"]] = namespace
        elif "value" in var:
            env[var["name"]] = var["value"]
    assert container["command"] == ["mlflow", "server"]
    args = [expand(a, env) for a in container["args"]]
    with mock.patch.dict(os.environ, {}, clear=True):  # click would read MLFLOW_* variables of this shell
        return dict(server.make_context("server", args).params)


def host_problems(params: dict[str, Any], hosts: list[str]) -> list[str]:
    from mlflow.server.security_utils import is_allowed_host_header

    allowed = [h.strip() for h in (params["allowed_hosts"] or "").split(",")]
    return [
        f"Host {h} is refused by --allowed-hosts" for h in hosts if not is_allowed_host_header(allowed, h)
    ]


# ---------------------------------------------------------------- the checkers can fail


def _deployment(**container: Any) -> Doc:
    base = {"name": "c", "image": "x", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad"},
        "spec": {"template": {"spec": {"containers": [{**base, **container}]}}},
    }


def test_restricted_checker_names_each_missing_field() -> None:
    problems = "\n".join(restricted_problems(_deployment()))
    for expected in ("runAsNonRoot", "seccompProfile", "allowPrivilegeEscalation", "drop ALL", "no limits"):
        assert expected in problems
    good_ctx = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    problems = restricted_problems(
        _deployment(securityContext=good_ctx, resources={"requests": {"cpu": "1", "memory": "1"}})
    )
    assert problems == [
        "Deployment/bad container c: adds capabilities ['SYS_ADMIN']",
        "Deployment/bad container c: no limits for ['cpu', 'memory']",
    ]


def test_secret_rbac_schema_and_host_checkers_catch_bad_documents() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": ""}}
    assert secret_value_problems(secret) == ["Secret/s carries stringData"]
    role = {
        "kind": "Role",
        "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["secrets", "*"], "verbs": ["get", "bind"]}],
    }
    assert len(rbac_problems(role)) == 3
    assert rbac_problems({"kind": "ClusterRole", "metadata": {"name": "r"}}) == [
        "ClusterRole/r: cluster-scoped RBAC"
    ]
    by_name = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"], "verbs": ["get"]}
    assert rbac_problems({**role, "rules": [by_name]}) == []
    for loose in ({**by_name, "resourceNames": []}, {**by_name, "verbs": ["get", "list"]}):
        assert rbac_problems({**role, "rules": [loose]}) == [
            "Role/r: grants access to Secrets beyond get by resourceNames"
        ]
    binding = {"kind": "RoleBinding", "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole"}}
    assert rbac_problems(binding) == ["RoleBinding/b: binds a ClusterRole"]
    typo = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"}, "spce": {}}
    assert "spce" in schema_problems(typo, K8S_VERSIONS[0])[0]
    assert host_problems({"allowed_hosts": "a:5000"}, ["a:5000", "a"]) == [
        "Host a is refused by --allowed-hosts"
    ]


# ---------------------------------------------------------------- the rendered manifests


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_document_is_valid_against_the_kubernetes_schema(target: str, version: str) -> None:
    docs = render(target)
    assert docs, f"{target} rendered nothing"
    assert [p for d in docs for p in schema_problems(d, version)] == []


@pytest.mark.parametrize("target", TARGETS)
def test_pods_meet_restricted_pod_security_with_resources(target: str) -> None:
    docs = render(target)
    assert any(pod_spec(d) for d in docs)
    assert [p for d in docs for p in restricted_problems(d)] == []
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    assert len(namespaces) == 1
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("target", TARGETS)
def test_rbac_is_least_privilege_and_in_the_namespace(target: str) -> None:
    docs = render(target)
    namespace = next(d for d in docs if d["kind"] == "Namespace")["metadata"]["name"]
    assert [p for d in docs for p in rbac_problems(d)] == []
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert {s["name"] for b in bindings for s in b["subjects"]} == {"hala-pipeline"}
    for subject in (s for b in bindings for s in b["subjects"]):
        assert subject["name"] in accounts and subject["namespace"] == namespace
    for doc in docs:
        pod = pod_spec(doc)
        if pod is not None:
            assert pod.get("serviceAccountName", "default") in accounts | {"default"}
            assert pod.get("automountServiceAccountToken") is False, "servers call no Kubernetes API"


# What the pipeline's pods call, and nothing more. The Secret is the one the KFP launcher reads for the
# default (minio://) pipeline root: kubeflow/pipelines backend/src/v2/config/env.go,
# minioArtifactSecretName = "mlpipeline-minio-artifact", read with Secrets(namespace).Get in
# backend/src/v2/objectstore/object_store.go, commit 7b70c7b95f6832772efd6fd0029a4024491a0f44.
PIPELINE_RULES = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kfp-launcher"], "verbs": ["get"]},
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["mlpipeline-minio-artifact"],
        "verbs": ["get"],
    },
    {
        "apiGroups": ["trainer.kubeflow.org"],
        "resources": ["trainjobs"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},  # why a TrainJob's pods did not start
]


@pytest.mark.parametrize("target", TARGETS)
def test_pipeline_role_grants_exactly_what_the_pipeline_calls(target: str) -> None:
    docs = render(target)
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    assert set(roles) == {"hala-pipeline"}
    rules = roles["hala-pipeline"]["rules"]
    assert rules == PIPELINE_RULES
    for rule in rules:
        for field in ("verbs", "resources", "apiGroups", "resourceNames"):
            assert not any("*" in item for item in rule.get(field, [])), (field, rule)
    secrets = [r for r in rules if "secrets" in r["resources"]]
    assert secrets == [r for r in secrets if r.get("resourceNames") and r["verbs"] == ["get"]]
    binding = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "hala-pipeline")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "hala-pipeline",
    }


def test_trainjob_rule_matches_the_api_the_launcher_calls() -> None:
    from hala.training.launch import TRAINJOB_API

    group, _version, plural = TRAINJOB_API
    trainjobs = next(r for r in PIPELINE_RULES if "trainjobs" in r["resources"])
    assert (trainjobs["apiGroups"], trainjobs["resources"]) == ([group], [plural])


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_carries_a_value_and_every_reference_has_a_template(target: str) -> None:
    docs = render(target)
    templates = secret_templates()
    assert [p for d in [*docs, *templates] for p in secret_value_problems(d)] == []
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created by hand, never applied"
    keys = {t["metadata"]["name"]: t["metadata"]["annotations"]["hala.ai/keys"].split(",") for t in templates}
    for doc in docs:
        pod = pod_spec(doc)
        for c in containers(pod) if pod else []:
            for var in c.get("env", []):
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in keys.get(ref["name"], []), f"{ref} has no template"
        for volume in pod.get("volumes", []) if pod else []:
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    assert item["key"] in keys[volume["secret"]["secretName"]]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_secret_templates_are_valid_and_cover_the_compiled_pipelines(version: str) -> None:
    templates = secret_templates()
    assert [p for t in templates for p in schema_problems(t, version)] == []
    keys = {t["metadata"]["name"]: t["metadata"]["annotations"]["hala.ai/keys"].split(",") for t in templates}
    for name in PRESET_NAMES:
        cluster = load_preset(name).cluster
        assert cluster.hub_token_secret in keys and cluster.mlflow_secret in keys
    seen = 0
    for path in sorted(COMPILED.glob("*.yaml")):
        for entry in _find(list(yaml.safe_load_all(path.read_text())), "secretAsEnv"):
            for mapping in entry["keyToEnv"]:
                assert mapping["secretKey"] in keys[entry["secretName"]], (path.name, entry)
                seen += 1
    assert seen, "no secretAsEnv found in pipelines/compiled/*.yaml"


@pytest.mark.parametrize("target", TARGETS)
def test_work_claim_is_read_write_many_and_named_by_every_preset(target: str) -> None:
    docs = render(target)
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for name in PRESET_NAMES:
        claim = claims[load_preset(name).cluster.work_pvc]
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for path in sorted(COMPILED.glob("*.yaml")):
        for mount in _find(list(yaml.safe_load_all(path.read_text())), "pvcMount"):
            assert mount["constant"] in claims, (path.name, mount)
    if target == "base":
        assert "storageClassName" not in claims["hala-work"]["spec"], "no storage class in the base"
    else:
        params = yaml.safe_load((MANIFESTS / target / "params.yaml").read_text())["data"]
        assert claims["hala-work"]["spec"]["storageClassName"] == params["work_storage_class"]
        assert claims["hala-work"]["spec"]["resources"]["requests"]["storage"] == params["work_size"]


@pytest.mark.parametrize("target", TARGETS)
def test_mlflow_server_command_line_is_accepted_by_mlflow_and_admits_its_service(target: str) -> None:
    docs = render(target)
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "hala-mlflow")
    params = mlflow_server_params(deployment)
    assert params["app_name"] == "basic-auth"
    assert params["serve_artifacts"] is True
    assert params["artifacts_destination"].startswith("s3://")
    assert params["backend_store_uri"] is None, "the Postgres URI comes from a Secret, never from args"
    env = {v["name"]: v for v in pod_spec(deployment)["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "hala-mlflow-server"
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "hala-mlflow")
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    port = service["spec"]["ports"][0]["port"]
    forms = [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    assert host_problems(params, [f"{form}:{port}" for form in forms]) == []
    assert host_problems(params, ["evil.example.com"]) != []
    if target != "base":
        values = yaml.safe_load((MANIFESTS / target / "params.yaml").read_text())["data"]
        assert params["artifacts_destination"] == values["artifacts_destination"]


# ---------------------------------------------------------------- node pools


def _pools() -> dict[str, Doc]:
    return yaml.safe_load(NODEPOOLS.read_text())["pools"]


def nodepool_problems(pool: NodePool, pools: dict[str, Doc], gpus: int) -> list[str]:
    """Where a preset's pool cannot be scheduled on the documented node pools."""
    from kubernetes.utils.quantity import parse_quantity

    matches = [
        name
        for name, spec in pools.items()
        if pool.node_selector.items() <= spec["labels"].items() and pool.node_selector
    ]
    if len(matches) != 1:
        return [f"node_selector {pool.node_selector} selects {matches}, not exactly one pool"]
    spec = pools[matches[0]]
    problems = []
    taints = [t for t in spec["taints"] if t["effect"] in ("NoSchedule", "NoExecute")]
    untolerated = [t["key"] for t in taints if t["key"] != pool.toleration_key]
    if untolerated:
        problems.append(f"pool {matches[0]} has taints {untolerated} the preset does not tolerate")
    if pool.toleration_key and pool.toleration_key not in [t["key"] for t in taints]:
        problems.append(f"pool {matches[0]} has no taint {pool.toleration_key} (GPU nodes are unprotected)")
    node = spec["node"]
    if parse_quantity(pool.cpu) > parse_quantity(node["cpu"]):
        problems.append(f"cpu {pool.cpu} does not fit a {matches[0]} node ({node['cpu']})")
    if parse_quantity(pool.memory) > parse_quantity(node["memory"]):
        problems.append(f"memory {pool.memory} does not fit a {matches[0]} node ({node['memory']})")
    if gpus > node["gpus"]:
        problems.append(f"{gpus} GPUs do not fit a {matches[0]} node ({node['gpus']})")
    if gpus and pool.accelerator_type != node.get("gpu_resource"):
        problems.append(f"accelerator {pool.accelerator_type} is not {node.get('gpu_resource')}")
    return problems


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_node_pools_match_the_preset(name: str) -> None:
    preset = load_preset(name)
    cluster, pools = preset.cluster, _pools()
    presets_pools = {
        f: v for f in type(cluster).model_fields if isinstance(v := getattr(cluster, f), NodePool)
    }
    assert {"data_pool", "translation_pool", "training_pool"} <= set(presets_pools)
    engines = (preset.teacher.engine, preset.judge.engine, preset.corpus.engine)
    vllm_gpus = max((e.tensor_parallel_size for e in engines if e.kind == "vllm"), default=0)
    problems = []
    for field, pool in presets_pools.items():
        gpus = max(pool.accelerators, vllm_gpus if field == "translation_pool" else 0)
        problems += [f"{field}: {p}" for p in nodepool_problems(pool, pools, gpus)]
    assert problems == []


def test_nodepool_checker_catches_mismatches() -> None:
    pools = _pools()
    untainted = NodePool(node_selector={"hala.ai/pool": "a100"}, accelerator_type="nvidia.com/gpu")
    assert "does not tolerate" in nodepool_problems(untainted, pools, 0)[0]
    missing = NodePool(node_selector={"hala.ai/pool": "tpu"})
    assert "not exactly one pool" in nodepool_problems(missing, pools, 0)[0]
    big = NodePool(
        node_selector={"hala.ai/pool": "h100"},
        toleration_key="nvidia.com/gpu",
        accelerator_type="nvidia.com/gpu",
        memory="4Ti",
    )
    assert nodepool_problems(big, pools, 16) == [
        "memory 4Ti does not fit a h100 node (1800Gi)",
        "16 GPUs do not fit a h100 node (8)",
    ]
    tolerating = NodePool(node_selector={"hala.ai/pool": "cpu"}, toleration_key="nvidia.com/gpu")
    assert "no taint nvidia.com/gpu" in nodepool_problems(tolerating, pools, 0)[0]


def test_every_manifest_file_is_listed_in_its_kustomization() -> None:
    """A YAML file beside a kustomization.yaml that it does not list would silently never be applied."""
    unlisted = []
    for kustomization in MANIFESTS.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        listed = {*spec.get("resources", []), *(p.get("path") for p in spec.get("patches", []))}
        listed |= {f for gen in spec.get("configMapGenerator", []) for f in gen.get("files", [])}
        for path in kustomization.parent.rglob("*.yaml"):
            nested = any(
                (parent / "kustomization.yaml").exists()
                for parent in path.parents
                if kustomization.parent in parent.parents
            )
            rel = path.relative_to(kustomization.parent).as_posix()
            if path != kustomization and not nested and rel not in listed:
                unlisted.append(str(path.relative_to(MANIFESTS)))
    assert unlisted == []
