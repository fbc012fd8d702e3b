"""How an SFT job runs: in this process, under torchrun on one node's GPUs, or as a Kubeflow TrainJob.

``python -m hala.training.launch JOB.json`` is what every rank runs; rank 0 writes the result
next to the job file (``JOB.result.json``) for the launching process to read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hala.config import ClusterConfig, secret_env
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


def trainjob_manifest(
    name: str, namespace: str, image: str, job_file: str, nodes: int, cluster: ClusterConfig
) -> dict[str, Any]:
    """A Kubeflow Trainer ``TrainJob`` running the launcher on ``nodes`` x the pool's GPUs (multi-node SFT).

    Its pods land on the training pool, tolerate its taint and mount the work volume, where the
    job file, the data and the checkpoints live. The ``torch-distributed`` runtime sets torchrun's
    rendezvous.
    """
    pool, work_root = cluster.training_pool, cluster.work_root
    env = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for secret, keys in secret_env(cluster).items()
        for key, var in keys.items()
    ]
    overrides: dict[str, Any] = {
        "targetJobs": [{"name": "node"}],
        "nodeSelector": dict(pool.node_selector),
        "volumes": [
            {"name": "work", "persistentVolumeClaim": {"claimName": cluster.work_pvc}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
        "containers": [
            {
                "name": "node",
                "env": env,
                "volumeMounts": [
                    {"name": "work", "mountPath": work_root},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                ],
            }
        ],
    }
    if pool.toleration_key:
        overrides["tolerations"] = [
            {"key": pool.toleration_key, "operator": "Exists", "effect": "NoSchedule"}
        ]
    gpu = pool.accelerator_type or "nvidia.com/gpu"
    return {
        "apiVersion": f"{TRAINJOB_API[0]}/{TRAINJOB_API[1]}",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "hala"}},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {
                "image": image,
                "command": ["torchrun", "-m", "hala.training.launch", job_file],
                "numNodes": nodes,
                "numProcPerNode": pool.accelerators,
                "resourcesPerNode": {
                    "requests": {"cpu": pool.cpu, "memory": pool.memory},
                    "limits": {gpu: pool.accelerators, "memory": pool.memory},
                },
            },
            "podSpecOverrides": [overrides],
        },
    }


def run_trainjob(manifest: dict[str, Any], poll_seconds: float = 30.0) -> None:
    """Create the TrainJob in this pod's cluster and wait until it completes; raise when it fails."""
    import time

    from kubernetes import client, config

    config.load_incluster_config()
    api = client.CustomObjectsApi()
    group, version, plural = TRAINJOB_API
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        api.create_namespaced_custom_object(group, version, namespace, plural, manifest)
    except client.ApiException as exc:
        if exc.status != 409:  # 409: a retried task finds the job it created before: wait on it
            raise
    while True:
        status = api.get_namespaced_custom_object(group, version, namespace, plural, name).get("status", {})
        conditions = {c["type"]: c for c in status.get("conditions", []) if c.get("status") == "True"}
        if "Complete" in conditions:
            return
        if "Failed" in conditions:
            raise HalaError(
                f"TrainJob {namespace}/{name} failed: {conditions['Failed'].get('message', '')}; "
                f"see `kubectl -n {namespace} logs -l trainer.kubeflow.org/trainjob-name={name}`"
            )
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
