"""Cluster concerns attached to tasks: node pools, tolerations, resources, secrets, retries.

Kept out of the components so they stay runnable anywhere; the local runner ignores all of it.
"""

from __future__ import annotations

from kfp import dsl, kubernetes

from hala.config import RUN_AS_USER, ClusterConfig, EngineConfig, NodePool, Preset, TrainingConfig, secret_env
from hala.stages.context import ENV_EXPERIMENT, ENV_RUN_ID

# The KFP backend labels every pod of a run with its run id (kubeflow/pipelines,
# backend/src/apiserver/resource/resource_manager.go, readRunLogFromPod: "Pod ... does not belong to
# run" unless pod.Labels["pipeline/runid"] is the run's id).
RUN_ID_FIELD = "metadata.labels['pipeline/runid']"


def place(task: dsl.PipelineTask, pool: NodePool, accelerators: int | None = None) -> dsl.PipelineTask:
    """Pin a task to a node pool, tolerate its taint, size it and request accelerators.

    ``accelerators`` overrides the pool's count (a stage's tensor-parallel size, say).
    """
    # Pod Security "restricted" (the namespace enforces it): the images' non-root user. KFP's
    # compiler adds no privilege escalation, all capabilities dropped and seccomp RuntimeDefault.
    kubernetes.set_security_context(task, run_as_user=RUN_AS_USER, run_as_non_root=True)
    for key, value in pool.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    if pool.toleration_key:
        kubernetes.add_toleration(task, key=pool.toleration_key, operator="Exists", effect="NoSchedule")
    task.set_cpu_request(pool.cpu).set_memory_request(pool.memory).set_memory_limit(pool.memory)
    count = pool.accelerators if accelerators is None else accelerators
    if count and pool.accelerator_type:
        task.set_accelerator_type(pool.accelerator_type).set_accelerator_limit(count)
    return task


def on_gpu_pool(
    task: dsl.PipelineTask, cluster: ClusterConfig, engine: EngineConfig, pool: NodePool | None = None
) -> dsl.PipelineTask:
    """Place a generation task: GPUs for vLLM (or ``device: gpu``), the data pool for transformers on CPU.

    vLLM gets ``pool`` (by default the translation pool), one GPU per tensor-parallel rank and shared
    memory for its workers.
    """
    if not engine.on_gpu():
        return place(task, cluster.data_pool, accelerators=0)
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory")
    gpus = cluster.translation_pool if pool is None else pool
    return place(task, gpus, accelerators=engine.tensor_parallel_size)


def on_training_pool(task: dsl.PipelineTask, cluster: ClusterConfig, cfg: TrainingConfig) -> dsl.PipelineTask:
    """Place an SFT task: the training pool with ``cfg.gpus`` GPUs and shared memory, or CPU when 0.

    NCCL and the data loader workers need a /dev/shm larger than the container default.
    """
    if not cfg.gpus or cfg.nodes > 1:  # several nodes: this pod only creates and watches the TrainJob
        return place(task, cluster.data_pool, accelerators=0)
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory")
    return place(task, cluster.training_pool, accelerators=cfg.gpus)


def with_work_volume(task: dsl.PipelineTask, cluster: ClusterConfig) -> dsl.PipelineTask:
    """Mount the shared work claim, where shard tasks keep the parts a retry resumes from."""
    kubernetes.mount_pvc(task, pvc_name=cluster.work_pvc, mount_path=cluster.work_root)
    return task


def with_secrets(task: dsl.PipelineTask, cluster: ClusterConfig) -> dsl.PipelineTask:
    """Expose the hub token and the MLflow connection from Kubernetes Secrets (names only)."""
    for secret, keys in secret_env(cluster).items():
        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=keys)
    return task


def with_run_context(task: dsl.PipelineTask, preset: Preset) -> dsl.PipelineTask:
    """Tell a task which pipeline run it belongs to, outside its inputs (so not in its cache key).

    ``HALA_EXPERIMENT`` is the preset's MLflow experiment; on the cluster ``HALA_RUN_ID`` is the pod's
    ``pipeline/runid`` label, through the downward API. The local runner ignores the latter:
    ``hala run`` sets ``HALA_RUN_ID`` in the environment its tasks inherit.
    """
    task.set_env_variable(ENV_EXPERIMENT, preset.tracking.experiment)
    kubernetes.use_field_path_as_env(task, env_name=ENV_RUN_ID, field_path=RUN_ID_FIELD)
    return task
