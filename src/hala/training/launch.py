"""How an SFT job runs: in this process, under torchrun on one node's GPUs, or as a Kubeflow TrainJob.

``python -m hala.training.launch JOB.json`` is what every rank runs; rank 0 writes the result
next to the job file (``JOB.result.json``) for the launching process to read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hala.config import RUN_AS_USER, ClusterConfig, secret_env
from hala.errors import HalaError
from hala.training.sft import SFTJob, SFTResult, train_sft

TRAINJOB_API = ("trainer.kubeflow.org", "v1alpha1", "trainjobs")


def result_path(job_file: Path) -> Path:
    """Where rank 0 writes the result of ``job_file``."""
    return job_file.with_suffix(".result.json")


def torchrun_command(job_file: Path, gpus: int, nodes: int = 1) -> list[str]:
    """``torchrun`` over ``gpus`` processes per node (one node; a TrainJob sets the rendezvous itself)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={nodes}",
        f"--nproc_per_node={max(gpus, 1)}",
        "--standalone",
        "-m",
        "hala.training.launch",
        str(job_file),
    ]


def needs_launcher(job: SFTJob) -> bool:
    """True when the job needs ranks (several GPUs, or DeepSpeed, which always runs distributed)."""
    cfg = job.config
    return cfg.gpus > 1 or cfg.deepspeed != "none"


def run_job(job: SFTJob, job_file: Path) -> SFTResult:
    """Run ``job`` here: in-process on CPU or one GPU, under torchrun otherwise; returns rank 0's result."""
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(job.to_json())
    if not needs_launcher(job):
        return train_sft(job)
    env = dict(os.environ)
    if not job.config.gpus:
        env.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed's CPU accelerator (tests, laptops)
    done = subprocess.run(torchrun_command(job_file, job.config.gpus), env=env, check=False)
    if done.returncode:
        raise HalaError(f"SFT ranks failed (exit {done.returncode}); see the task log above. Job: {job_file}")
    return _read_result(result_path(job_file))


def _read_result(path: Path) -> SFTResult:
    from hala.training.data import SFTDataCounts

    raw = json.loads(path.read_text())
    raw["data"] = SFTDataCounts(**raw["data"])
    return SFTResult(**raw)


# Kubeflow Trainer, read at github.com/kubeflow/trainer tags v2.2.0 (dc7656ad878916f526cd401f30a347574cd47877)
# and v2.3.0 (658725bdae5c7e3a0854d93ac6ff492e109a22ab):
# - pkg/apis/trainer/v1alpha1/trainjob_types.go: v2.0 had spec.podSpecOverrides, v2.1 renamed it
#   podTemplateOverrides, v2.2 and v2.3 replaced it with spec.runtimePatches (keyed by a domain-prefixed
#   manager) -> trainingRuntimeSpec.template.spec.replicatedJobs[name].template.spec.template.spec (a
#   PodSpecPatch: volumes, containers, securityContext, nodeSelector, tolerations, ...). The API server
#   prunes the old fields silently. Both releases share that shape; v2.3 only adds
#   PodSpecPatch.terminationGracePeriodSeconds, which hala does not set.
# - pkg/runtime/framework/plugins/jobset/jobset.go (Validate): patches may only name replicated jobs and
#   containers of the runtime, and "must not have envs" for the node container: env goes in spec.trainer.env.
# - manifests/base/runtimes/torch_distributed.yaml: one replicated job "node" with one container "node",
#   no security context (so hala patches one in for Pod Security "restricted").
TRAINER_RELEASES = ("v2.2", "v2.3")
TRAINER_RELEASE_ANNOTATION = "hala.ai/trainer-release"
TRAINJOB_RUNTIME = "torch-distributed"
TRAINJOB_NODE = "node"  # the runtime's replicated job and its trainer container (constants.Node)
PATCH_MANAGER = "hala.ai/launch"
TRAINJOB_START_TIMEOUT_S = 1800.0


TRANSLATOR = "translator"  # the translator's SFT role (the students' roles are their sizes)


def sft_work_dir(work_root: str | Path, role: str, key: str) -> Path:
    """Where one SFT task keeps its job file, checkpoints and (multi-node) staged inputs."""
    return Path(work_root) / f"sft-{role}" / key


def trainjob_name(role: str, work_key: str) -> str:
    """The TrainJob of one SFT task (``work_key``: its work folder's key, so a retried task finds it)."""
    return f"hala-sft-{role.replace('.', '-')}-{work_key[:8]}".lower()


def trainer_release(cluster: ClusterConfig, release: str | None = None) -> str:
    """The Kubeflow Trainer release the TrainJob targets: ``release``, the preset's, else the default."""
    chosen = release or cluster.trainer_release
    if chosen not in TRAINER_RELEASES:
        raise HalaError(
            f"Kubeflow Trainer {chosen} is not supported: hala renders TrainJobs for "
            f"{list(TRAINER_RELEASES)} (spec.runtimePatches; v2.0/v2.1 had other override fields)"
        )
    return chosen


def _secret_env(cluster: ClusterConfig) -> list[Any]:
    """The pipeline Secrets as env vars, by reference (``secretKeyRef``), never values."""
    from kubeflow_trainer_api import models as m

    return [
        m.IoK8sApiCoreV1EnvVar(
            name=var,
            value_from=m.IoK8sApiCoreV1EnvVarSource(
                secret_key_ref=m.IoK8sApiCoreV1SecretKeySelector(name=secret, key=key)
            ),
        )
        for secret, keys in secret_env(cluster).items()
        for key, var in keys.items()
    ]


def _pod_spec_patch(cluster: ClusterConfig) -> Any:
    """Placement, volumes and a Pod Security "restricted" context for the runtime's ``node`` pods."""
    from kubeflow_trainer_api import models as m

    pool = cluster.training_pool
    runtime_default = m.IoK8sApiCoreV1SeccompProfile(type="RuntimeDefault")
    node = m.TrainerV1alpha1ContainerPatch(
        name=TRAINJOB_NODE,
        volume_mounts=[
            m.IoK8sApiCoreV1VolumeMount(name="work", mount_path=cluster.work_root),
            m.IoK8sApiCoreV1VolumeMount(name="dshm", mount_path="/dev/shm"),
        ],
        security_context=m.IoK8sApiCoreV1SecurityContext(
            allow_privilege_escalation=False,
            capabilities=m.IoK8sApiCoreV1Capabilities(drop=["ALL"]),
            run_as_non_root=True,
            seccomp_profile=runtime_default,
        ),
    )
    tolerations = None
    if pool.toleration_key:
        tolerations = [
            m.IoK8sApiCoreV1Toleration(key=pool.toleration_key, operator="Exists", effect="NoSchedule")
        ]
    return m.TrainerV1alpha1PodSpecPatch(
        node_selector=dict(pool.node_selector) or None,
        tolerations=tolerations,
        volumes=[
            m.IoK8sApiCoreV1Volume(
                name="work",
                persistent_volume_claim=m.IoK8sApiCoreV1PersistentVolumeClaimVolumeSource(
                    claim_name=cluster.work_pvc
                ),
            ),
            m.IoK8sApiCoreV1Volume(
                name="dshm", empty_dir=m.IoK8sApiCoreV1EmptyDirVolumeSource(medium="Memory")
            ),
        ],
        security_context=m.IoK8sApiCoreV1PodSecurityContext(
            run_as_non_root=True, run_as_user=RUN_AS_USER, seccomp_profile=runtime_default
        ),
        containers=[node],
    )


def _runtime_patch(cluster: ClusterConfig) -> Any:
    """The one ``runtimePatches`` entry of hala: the pod spec patch on the runtime's ``node`` job."""
    from kubeflow_trainer_api import models as m

    pod = m.TrainerV1alpha1PodTemplatePatch(spec=_pod_spec_patch(cluster))
    job = m.TrainerV1alpha1ReplicatedJobPatch(
        name=TRAINJOB_NODE,
        template=m.TrainerV1alpha1JobTemplatePatch(spec=m.TrainerV1alpha1JobSpecPatch(template=pod)),
    )
    jobset = m.TrainerV1alpha1JobSetTemplatePatch(
        spec=m.TrainerV1alpha1JobSetSpecPatch(replicated_jobs=[job])
    )
    return m.TrainerV1alpha1RuntimePatch(
        manager=PATCH_MANAGER,
        training_runtime_spec=m.TrainerV1alpha1TrainingRuntimeSpecPatch(template=jobset),
    )


def _trainer(image: str, job_file: str, nodes: int, cluster: ClusterConfig) -> Any:
    """``spec.trainer``: image, command, nodes x the pool's GPUs, and the Secrets' env (only here)."""
    from kubeflow_trainer_api import models as m

    pool = cluster.training_pool
    limits = {"memory": pool.memory}
    if pool.accelerators:
        limits[pool.accelerator_type or "nvidia.com/gpu"] = str(pool.accelerators)
    return m.TrainerV1alpha1Trainer(
        image=image,
        command=["torchrun", "-m", "hala.training.launch", job_file],
        env=_secret_env(cluster),
        num_nodes=nodes,
        num_proc_per_node=max(pool.accelerators, 1),
        resources_per_node=m.IoK8sApiCoreV1ResourceRequirements.from_dict(
            {"requests": {"cpu": pool.cpu, "memory": pool.memory}, "limits": limits}
        ),
    )


def trainjob_manifest(
    name: str,
    namespace: str,
    image: str,
    job_file: str,
    nodes: int,
    cluster: ClusterConfig,
    release: str | None = None,
) -> dict[str, Any]:
    """A Kubeflow Trainer ``TrainJob`` running the launcher on ``nodes`` x the pool's GPUs (multi-node SFT).

    Built with the Trainer's own API models (``kubeflow_trainer_api``). Its pods land on the training
    pool, tolerate its taint, mount the work volume (job file, data, checkpoints) and run as the images'
    non-root user; the ``torch-distributed`` runtime sets torchrun's rendezvous. ``release`` (else the
    preset's ``cluster.trainer_release``) is recorded in an annotation.
    """
    from kubeflow_trainer_api import models as m

    job = m.TrainerV1alpha1TrainJob(
        api_version=f"{TRAINJOB_API[0]}/{TRAINJOB_API[1]}",
        kind="TrainJob",
        metadata=m.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={"app.kubernetes.io/part-of": "hala"},
            annotations={TRAINER_RELEASE_ANNOTATION: trainer_release(cluster, release)},
        ),
        spec=m.TrainerV1alpha1TrainJobSpec(
            runtime_ref=m.TrainerV1alpha1RuntimeRef(
                name=TRAINJOB_RUNTIME, api_group=TRAINJOB_API[0], kind="ClusterTrainingRuntime"
            ),
            trainer=_trainer(image, job_file, nodes, cluster),
            runtime_patches=[_runtime_patch(cluster)],
        ),
    )
    manifest: dict[str, Any] = job.to_dict()
    return manifest


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The TrainJob's true conditions, by type."""
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", []) if c.get("status") == "True"}


def _started(obj: dict[str, Any]) -> bool:
    """True once any of the TrainJob's jobs has ready, succeeded or failed pods."""
    jobs = obj.get("status", {}).get("jobsStatus", [])
    return any(j.get("ready", 0) or j.get("succeeded", 0) or j.get("failed", 0) for j in jobs)


def _api_message(exc: Exception) -> str:
    """The API server's message of an ``ApiException`` (an admission webhook's reason, say)."""
    body = getattr(exc, "body", None)
    try:
        return str(json.loads(body)["message"]) if body else str(exc)
    except (ValueError, KeyError, TypeError):
        return str(body)


class _TrainJobs:
    """One TrainJob through the ``kubernetes`` client: get, create, delete, its Warning events."""

    def __init__(self, custom: Any, core: Any, namespace: str, name: str) -> None:
        self.custom, self.core, self.namespace, self.name = custom, core, namespace, name

    def _args(self) -> tuple[str, str, str, str]:
        group, version, plural = TRAINJOB_API
        return group, version, self.namespace, plural

    def get(self) -> dict[str, Any] | None:
        """The TrainJob, or None when there is none."""
        from kubernetes.client import ApiException

        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(*self._args(), self.name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def create(self, manifest: dict[str, Any]) -> None:
        """Create it; a refusal (CRD schema, Trainer's webhook, quota) raises with the server's reason."""
        from kubernetes.client import ApiException

        try:
            self.custom.create_namespaced_custom_object(*self._args(), manifest)
        except ApiException as exc:
            if exc.status != 409:  # 409: created meanwhile (a retried task racing its predecessor)
                raise HalaError(
                    f"TrainJob {self.namespace}/{self.name} was refused: {_api_message(exc)}"
                ) from None

    def delete(self, poll_seconds: float, timeout_s: float) -> None:
        """Delete it with its JobSet and pods (foreground) and wait until it is gone."""
        from kubernetes.client import ApiException

        try:
            self.custom.delete_namespaced_custom_object(
                *self._args(), self.name, propagation_policy="Foreground"
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
        deadline = time.monotonic() + timeout_s
        while self.get() is not None:
            if time.monotonic() > deadline:
                raise HalaError(f"TrainJob {self.namespace}/{self.name} is still being deleted")
            time.sleep(poll_seconds)

    def warnings(self, limit: int = 10) -> list[str]:
        """The latest Warning events of the TrainJob, its JobSet, Jobs and pods (names start with its own)."""
        events = self.core.list_namespaced_event(self.namespace, field_selector="type=Warning").items
        lines: list[str] = []
        for event in events:
            obj = event.involved_object
            if obj.name == self.name or str(obj.name).startswith(f"{self.name}-"):
                line = f"{obj.kind}/{obj.name}: {event.reason}: {event.message}"
                if line not in lines:
                    lines.append(line)
        return lines[-limit:]

    def failure(self, what: str) -> HalaError:
        """An error naming the failure, the Warning events and where the logs are."""
        events = "\n  ".join(self.warnings()) or "(no Warning events)"
        return HalaError(
            f"TrainJob {self.namespace}/{self.name} {what}\n  {events}\n"
            f"see `kubectl -n {self.namespace} describe trainjob {self.name}` and "
            f"`kubectl -n {self.namespace} logs -l jobset.sigs.k8s.io/jobset-name={self.name}`"
        )


def _clients() -> tuple[Any, Any]:
    """The in-cluster ``CustomObjectsApi`` and ``CoreV1Api`` (this pod's service account)."""
    from kubernetes import client, config

    config.load_incluster_config()
    return client.CustomObjectsApi(), client.CoreV1Api()


def _submit(jobs: _TrainJobs, manifest: dict[str, Any], poll_seconds: float, timeout_s: float) -> None:
    """Create the TrainJob; one a retried task finds Failed is deleted and created again."""
    existing = jobs.get()
    if existing is not None and "Failed" in _conditions(existing):
        reason = _conditions(existing)["Failed"].get("message", "")
        print(f"TrainJob {jobs.namespace}/{jobs.name} failed before ({reason}); recreating it", flush=True)
        jobs.delete(poll_seconds, timeout_s)
        existing = None
    if existing is None:
        jobs.create(manifest)


def run_trainjob(
    manifest: dict[str, Any],
    poll_seconds: float = 30.0,
    start_timeout_s: float = TRAINJOB_START_TIMEOUT_S,
    clients: tuple[Any, Any] | None = None,
) -> None:
    """Create the TrainJob in this pod's cluster and wait until it completes; raise when it fails.

    A retried task waits on the TrainJob it created before, or recreates it when that one failed (the
    checkpoints on the work volume make the new one resume). Pods that are not ready within
    ``start_timeout_s`` (Pending, or refused by admission) fail the task with the Kubernetes events'
    reasons, and the TrainJob is deleted so it holds no nodes; time suspended (queued by Kueue) does not
    count. ``clients`` is (``CustomObjectsApi``, ``CoreV1Api``); by default the in-cluster ones.
    """
    custom, core = clients or _clients()
    jobs = _TrainJobs(custom, core, manifest["metadata"]["namespace"], manifest["metadata"]["name"])
    _submit(jobs, manifest, poll_seconds, start_timeout_s)
    deadline = time.monotonic() + start_timeout_s
    while True:
        obj = jobs.get()
        if obj is None:
            raise HalaError(f"TrainJob {jobs.namespace}/{jobs.name} was deleted while hala waited on it")
        conditions = _conditions(obj)
        if "Complete" in conditions:
            return
        if "Failed" in conditions:
            raise jobs.failure(f"failed: {conditions['Failed'].get('message', '')}")
        if "Suspended" in conditions or _started(obj):
            deadline = time.monotonic() + start_timeout_s
        elif time.monotonic() > deadline:
            error = jobs.failure(f"has no ready pods after {start_timeout_s:.0f} s (Pending or refused):")
            jobs.delete(poll_seconds, start_timeout_s)
            raise error
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> int:
    """Entry point of every rank."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m hala.training.launch JOB.json", file=sys.stderr)
        return 2
    job_file = Path(args[0])
    result = train_sft(SFTJob.from_json(job_file.read_text()))
    if int(os.environ.get("RANK", "0")) == 0:
        result_path(job_file).write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
