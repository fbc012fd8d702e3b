"""Run a pipeline's independent tasks side by side under KFP's local runner.

KFP 2.17's local runner (``kfp.local.orchestrator.enhanced_dag_orchestrator.run_enhanced_dag``) runs
the tasks of a DAG one after another in topological order; only a ``ParallelFor``'s iterations run at
once. Most of a tiny run's tasks are short and spend their time starting Python and importing, so on
two cores half the machine sat idle. :func:`run_dag_concurrently` is the same DAG runner (same task
kinds, the same gating on a failed upstream task, exit tasks last, the same outputs), except that every
task whose upstream tasks have ended is started at once, and :func:`limit_tasks` caps how many task
processes run together (the cores). It is installed only for ``hala run`` and only on the KFP release it
was written against (:data:`KFP_VERSION`); on any other, the local runner is left as it is.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from importlib import metadata
from typing import Any

KFP_VERSION = "2.17.3"  # the local runner this module mirrors (kfp/local/orchestrator)
DAG_THREADS = 16  # tasks of one DAG waiting on their process (the cores cap the processes)


def run_dag_concurrently(
    pipeline_resource_name: str,
    dag_component_spec: Any,
    executors: dict[str, Any],
    components: dict[str, Any],
    dag_arguments: dict[str, Any],
    pipeline_root: str,
    runner: Any,
    unique_pipeline_id: str,
    fail_stack: list[str],
    parent_io_store: Any = None,
) -> tuple[dict[str, Any], Any]:
    """``run_enhanced_dag``, with every ready task started at once (same signature and result)."""
    from kfp.local import io, status
    from kfp.local.orchestrator import enhanced_dag_orchestrator as kfp_dag
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils
    from kfp.pipeline_spec import pipeline_spec_pb2

    arguments = OrchestratorUtils.join_user_inputs_and_defaults(
        dag_arguments=dag_arguments, dag_inputs_spec=dag_component_spec.input_definitions
    )
    io_store = io.IOStore(parent=parent_io_store)
    for key, value in arguments.items():
        io_store.put_parent_input(key, value)
    strategy = pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.TriggerStrategy
    exit_tasks, body = [], {}
    for name, spec in dag_component_spec.dag.tasks.items():
        final = spec.trigger_policy.strategy == strategy.ALL_UPSTREAM_TASKS_COMPLETED
        if final and kfp_dag._has_task_final_status_input(spec):
            exit_tasks.append((name, spec))
        else:
            body[name] = spec
    common = {
        "pipeline_resource_name": pipeline_resource_name,
        "components": components,
        "executors": executors,
        "io_store": io_store,
        "pipeline_root": pipeline_root,
        "runner": runner,
        "unique_pipeline_id": unique_pipeline_id,
        "fail_stack": fail_stack,
    }

    def run(name: str, spec: Any) -> tuple[dict[str, Any], Any]:
        """One body task: a loop, a conditional task, or a plain one (outputs, status)."""
        if spec.WhichOneof("iterator") and kfp_dag._has_valid_iterator(spec):
            failed = kfp_dag._run_parallel_for_task(
                task_name=name, task_spec=spec, parallel_executor=kfp_dag.ParallelExecutor(), **common
            )
            return {}, status.Status.FAILURE if failed else status.Status.SUCCESS
        if spec.trigger_policy.condition:
            evaluator = kfp_dag.ConditionEvaluator()
            if not evaluator.evaluate_condition(spec.trigger_policy.condition, io_store):
                return {}, status.Status.SUCCESS  # skipped, as the sequential runner skips it
        outputs, task_status = kfp_dag.execute_task(task_name=name, task_spec=spec, **common)
        return dict(outputs), task_status

    failed: set[str] = set()
    ended: set[str] = set()
    pending = dict(body)
    running: dict[Future[tuple[dict[str, Any], Any]], str] = {}
    with ThreadPoolExecutor(max_workers=DAG_THREADS, thread_name_prefix="hala-dag") as pool:
        while pending or running:
            for name in sorted(pending):
                spec = pending[name]
                upstream = set(spec.dependent_tasks) & set(body)
                if not upstream <= ended:
                    continue
                del pending[name]
                if (
                    upstream & failed
                    and spec.trigger_policy.strategy != strategy.ALL_UPSTREAM_TASKS_COMPLETED
                ):
                    failed.add(name)  # skipped: an upstream task failed
                    ended.add(name)
                    io_store.put_task_status(name, "FAILED")
                    continue
                running[pool.submit(run, name, spec)] = name
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                outputs, task_status = future.result()
                ended.add(name)
                ok = task_status == status.Status.SUCCESS
                io_store.put_task_status(name, "SUCCEEDED" if ok else "FAILED")
                if not ok:
                    failed.add(name)
                    if name not in fail_stack and not body[name].WhichOneof("iterator"):
                        fail_stack.append(name)
                    continue
                for key, value in outputs.items():
                    io_store.put_task_output(name, key, value)
    if failed and not exit_tasks:
        return {}, status.Status.FAILURE
    exit_failed = False
    for name, spec in exit_tasks:  # after the body, whatever happened there
        outputs, task_status = kfp_dag.execute_task(task_name=name, task_spec=spec, **common)
        ok = task_status == status.Status.SUCCESS
        io_store.put_task_status(name, "SUCCEEDED" if ok else "FAILED")
        if ok:
            for key, value in outputs.items():
                io_store.put_task_output(name, key, value)
        else:
            fail_stack.append(name)
            exit_failed = True
    if failed or exit_failed:
        return {}, status.Status.FAILURE
    dag_outputs = OrchestratorUtils.get_dag_outputs(
        dag_outputs_spec=dag_component_spec.dag.outputs, io_store=io_store
    )
    return dag_outputs, status.Status.SUCCESS


def supported() -> bool:
    """Whether the installed KFP's local runner is the one this module mirrors."""
    try:
        return metadata.version("kfp") == KFP_VERSION
    except metadata.PackageNotFoundError:
        return False


@contextlib.contextmanager
def concurrent_dags() -> Iterator[bool]:
    """Run DAGs with :func:`run_dag_concurrently` while the context is open; yields whether it is on."""
    if not supported():
        yield False
        return
    from kfp.local.orchestrator import enhanced_dag_orchestrator as kfp_dag

    original = kfp_dag.run_enhanced_dag
    kfp_dag.run_enhanced_dag = run_dag_concurrently
    try:
        yield True
    finally:
        kfp_dag.run_enhanced_dag = original


def limit_tasks(run: Callable[..., Any], slots: int) -> Callable[..., Any]:
    """``run`` (the local runner's task executor) with at most ``slots`` task processes at once."""
    gate = threading.BoundedSemaphore(slots)

    def limited(*args: Any, **kwargs: Any) -> Any:
        with gate:
            return run(*args, **kwargs)

    return limited
