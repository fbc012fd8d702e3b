"""Local tasks started from a warm interpreter (pipelines/warm_start.py) behave as KFP's subprocesses.

The command shapes come from KFP itself: a component compiled by kfp 2.17, passed through the local
runner's own ``replace_python_executable``, as ``SubprocessTaskHandler.run`` does before it starts one.
"""

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl, local
from kfp.dsl.python_component import PythonComponent
from kfp.local.subprocess_task_handler import replace_python_executable

from hala_pipelines.local import started_warm
from hala_pipelines.warm_start import executor_argv


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def where(name: str) -> str:
    """Which process ran the task, under which parent, with which environment and folder."""
    import json
    import os

    return json.dumps(
        {"pid": os.getpid(), "ppid": os.getppid(), "env": os.environ.get(name, ""), "cwd": os.getcwd()}
    )


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fails() -> str:
    raise ValueError("this task fails on purpose")


@dsl.component(base_image="python:3.11", install_kfp_package=False, packages_to_install=["six"])
def installs() -> str:
    return "x"


def _command(component: Any) -> list[str]:
    """The container command and args KFP compiled ``component`` to, as the local runner runs them."""
    container = component.component_spec.implementation.container
    return replace_python_executable([*container.command, *container.args], sys.executable)


def _pipeline_components() -> list[Any]:
    """Every component of the pipeline (components/*.py)."""
    import importlib

    found = []
    for path in sorted((Path(__file__).parents[1] / "components").glob("*.py")):
        module = importlib.import_module(f"hala_components.{path.stem}")
        found += [c for c in vars(module).values() if isinstance(c, PythonComponent) and c not in found]
    return found


def test_a_compiled_component_command_is_parsed_into_its_source_and_executor_arguments() -> None:
    source, args = executor_argv(_command(where)) or ("", [])
    assert "def where(name: str) -> str:" in source
    assert args == ["--executor_input", "{{$}}", "--function_to_execute", "where"]


def test_every_pipeline_component_is_started_warm() -> None:
    components = _pipeline_components()
    assert len(components) >= 15
    assert [c.name for c in components if executor_argv(_command(c)) is None] == []


def test_commands_it_cannot_start_exactly_are_left_to_kfp() -> None:
    assert executor_argv(_command(installs)) is None  # a pip install first
    container = where.component_spec.implementation.container
    other = replace_python_executable([*container.command, *container.args], "/opt/other/python")
    assert executor_argv(other) is None  # another interpreter
    assert executor_argv(["python3", "-c", "print(1)"]) is None


@pytest.mark.component
def test_tasks_run_in_children_of_the_starter_with_their_environment_folder_and_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    cold = json.loads(where(name="HALA_WARM_PROBE").output)  # KFP's own start: sh, then a new python3
    with pytest.raises(RuntimeError, match="fails"):
        fails()
    with started_warm() as starter:
        monkeypatch.setenv("HALA_WARM_PROBE", "set after the starter started")
        first = json.loads(where(name="HALA_WARM_PROBE").output)
        second = json.loads(where(name="HALA_WARM_PROBE").output)
        assert first["ppid"] == second["ppid"] == starter.process.pid != cold["ppid"]  # forked by the starter
        assert first["pid"] != second["pid"]  # a process per task
        assert first["env"] == "set after the starter started"  # the runner's environment at the task
        assert first["cwd"] == cold["cwd"] == os.getcwd()
        with pytest.raises(RuntimeError, match="fails"):  # a failing task fails the same way
            fails()
    assert starter.process.poll() is not None  # stopped with the run


@pytest.mark.component
def test_the_starter_ends_with_its_run_even_when_the_run_is_killed() -> None:
    import signal
    import subprocess
    import time

    code = (
        "from hala_pipelines.warm_start import warm_tasks\n"
        "import time\n"
        "with warm_tasks() as starter:\n"
        "    print(starter.process.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    starter = int(run.stdout.readline())
    run.send_signal(signal.SIGKILL)  # no finally runs: the starter notices on its own
    run.wait()
    deadline = time.monotonic() + 60
    stat = Path(f"/proc/{starter}/stat")
    while time.monotonic() < deadline:
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return  # ended; a zombie until whoever adopted it reaps it
        except FileNotFoundError:
            return
        time.sleep(0.2)
    os.kill(starter, signal.SIGKILL)
    pytest.fail("the warm starter outlived its killed run by a minute")


@pytest.mark.component
def test_what_the_starter_imports_starts_no_thread_and_keeps_autograd_on() -> None:
    """Forking is safe only from a process with one thread; a task must find torch as a fresh one would."""
    import subprocess

    code = (
        "import os, threading\n"
        "os.environ['_KFP_RUNTIME'] = 'true'\n"
        "from hala_pipelines.warm_start import BASE_MODULES, IDLE_MODULES\n"
        "for name in (*BASE_MODULES, *IDLE_MODULES):\n"
        "    __import__(name)  # each must import here (preload would hide a failure)\n"
        "import torch\n"
        "print(len(threading.enumerate()), torch.is_grad_enabled())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "True"]


def test_a_module_that_fails_to_import_is_left_to_the_task() -> None:
    from hala_pipelines.warm_start import preload

    preload("hala_no_such_module")  # the starter goes on; the task meets the ImportError itself
    assert "hala_no_such_module" not in sys.modules
