"""Cluster concerns attached to tasks: node pools, tolerations, resources, secrets, retries.

Kept out of the components so they stay runnable anywhere; the local runner ignores all of it.
"""

from __future__ import annotations

from kfp import dsl, kubernetes

from hala.config import ClusterConfig, NodePool


def place(task: dsl.PipelineTask, pool: NodePool) -> dsl.PipelineTask:
    """Pin a task to a node pool, tolerate its taint, size it and request its accelerators."""
    for key, value in pool.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    if pool.toleration_key:
        kubernetes.add_toleration(task, key=pool.toleration_key, operator="Exists", effect="NoSchedule")
    task.set_cpu_request(pool.cpu).set_memory_request(pool.memory).set_memory_limit(pool.memory)
    if pool.accelerators and pool.accelerator_type:
        task.set_accelerator_type(pool.accelerator_type).set_accelerator_limit(pool.accelerators)
    return task


def with_secrets(task: dsl.PipelineTask, cluster: ClusterConfig) -> dsl.PipelineTask:
    """Expose the hub token and the MLflow connection from Kubernetes Secrets (names only)."""
    kubernetes.use_secret_as_env(
        task, secret_name=cluster.hub_token_secret, secret_key_to_env={"token": "HF_TOKEN"}
    )
    kubernetes.use_secret_as_env(
        task,
        secret_name=cluster.mlflow_secret,
        secret_key_to_env={
            "tracking_uri": "MLFLOW_TRACKING_URI",
            "username": "MLFLOW_TRACKING_USERNAME",
            "password": "MLFLOW_TRACKING_PASSWORD",
        },
    )
    return task
