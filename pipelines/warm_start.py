"""Start local tasks from a warm interpreter: fork a process that has already imported the stack.

Every task of a local run is a new ``python3 -m kfp.dsl.executor_main`` process that imports KFP,
MLflow, pyarrow and, in a model task, torch and transformers before its real work: a task that only
reaches MLflow takes 3.61 s on this 2-core machine, 7.86 s with torch and transformers
(``bench/task_overhead.py``), paid again by each of a tiny run's 46 tasks; started warm, 0.23 s.
``hala run`` starts one *warm starter* per run (:func:`warm_tasks`): a process that imports those
modules once (the heavy ones while it is idle) and forks a child for each task. The child is the task:
the same argv, environment, working folder and exit status as the subprocess KFP's local runner would
have started, its output streamed back through a pipe, its ephemeral component module written where
KFP's own shell snippet writes it.

Only the command shape KFP's lightweight Python components compile to is taken over
(:func:`executor_argv`, checked against the command KFP itself compiles); any other command runs as KFP
runs it. The starter imports nothing that starts a Python thread, so forking it is safe (pyarrow's
jemalloc background thread is fork-aware, as in every ``datasets`` worker). On the cluster each task is
its own pod and none of this applies.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import re
import runpy
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

# Imported before the first task is started (every task uses them: KFP's executor, MLflow's client and
# its SQL store with the GitPython it tags each run's source commit with, pyarrow) ...
BASE_MODULES = (
    "kfp.dsl.executor_main",
    "mlflow",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "git",
    "pyarrow.parquet",
    "hala.stages.context",
)
# ... and then one at a time while no task is waiting, what the model tasks import: torch, transformers
# with its generation code (scikit-learn, SciPy), PEFT and TRL (SFT, merge), NLTK (the translation metrics),
# LightEval's Arabic task configs (evaluate, contamination: 3 s each). Not LightEval's pipeline and model
# modules: importing its transformers model turns autograd off process-wide.
IDLE_MODULES = (
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "transformers.generation.utils",
    "datasets",
    "peft",
    "trl",
    "nltk",
    "lighteval.tasks.multilingual.tasks.arabic",
)
# ... and where it is installed (.venv-vllm), vLLM's offline engine: ~8 s a vLLM task does not pay again.
OPTIONAL_MODULES = ("vllm.entrypoints.llm",)
# The shell snippet KFP 2.17 compiles a Python component to (its lines, blank ones left out); the local
# runner puts its interpreter's path where the snippet says python3.
SCRIPT = (
    "program_path=$(mktemp -d)",
    'printf "%s" "$0" > "$program_path/ephemeral_component.py"',
    re.compile(
        r"_KFP_RUNTIME=true (?P<python>\S+) -m kfp\.dsl\.executor_main\s+--component_module_path"
        r'\s+"\$program_path/ephemeral_component\.py"\s+"\$@"'
    ),
)
_CODE = struct.Struct("!i")


class _Request(TypedDict):
    """What the runner sends the starter for one task."""

    argv: list[str]  # executor_main's arguments
    env: dict[str, str]
    cwd: str


def executor_argv(command: Sequence[str]) -> tuple[str, list[str]] | None:
    """A lightweight component's command -> (its component source, executor_main's argv); else None.

    KFP compiles a Python component to ``sh -ec SCRIPT SOURCE ARGS...``, where SCRIPT writes SOURCE to
    ``$program_path/ephemeral_component.py`` and runs ``python3 -m kfp.dsl.executor_main
    --component_module_path <that file> "$@"``. A command of any other shape is not ours to start.
    """
    if len(command) < 4 or list(command[:2]) != ["sh", "-ec"]:
        return None
    lines = [line.strip() for line in command[2].splitlines() if line.strip()]
    if len(lines) != len(SCRIPT) or lines[:2] != list(SCRIPT[:2]):
        return None
    executor = SCRIPT[2].fullmatch(lines[2])  # type: ignore[union-attr]
    if executor is None or executor["python"] not in ("python3", sys.executable):
        return None  # another interpreter than the starter's: run it as KFP does
    return command[3], list(command[4:])


# --- the starter process ----------------------------------------------------------------------------


def _serve(path: str, runner: int) -> None:
    """Listen on ``path``; fork a task for each request; send each its exit status when it ends.

    ``runner`` is the run's process: when it is no longer this process's parent, the starter ends.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    os.environ["_KFP_RUNTIME"] = "true"  # import KFP as a task does (its runtime subset)
    for name in BASE_MODULES:
        preload(name)
    idle = [*IDLE_MODULES, *(m for m in OPTIONAL_MODULES if importlib.util.find_spec(m.split(".")[0]))]
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}
    while True:
        if os.getppid() != runner:  # the run's process died without stopping us: end its tasks too
            os.killpg(0, signal.SIGKILL)
        ready = selector.select(timeout=0 if idle else 0.05)
        if ready:
            connection, _ = listener.accept()
            pid = _fork_task(listener, connection)
            waiting[pid] = connection
        elif idle:
            preload(idle.pop(0))
        _reap(waiting)


def preload(name: str) -> None:
    """Import ``name`` for the tasks to come; one that fails to import is left to the task that needs it.

    (The task then imports it itself and meets the same error, or handles it, as it would started cold:
    MLflow, say, runs without GitPython where no ``git`` executable is found.)
    """
    with contextlib.suppress(Exception):
        importlib.import_module(name)


def _fork_task(listener: socket.socket, connection: socket.socket) -> int:
    size = _CODE.unpack(_recv_exactly(connection, _CODE.size))[0]
    message, fds, _, _ = socket.recv_fds(connection, size, 1)
    while len(message) < size:
        message += _recv_exactly(connection, size - len(message))
    request: _Request = json.loads(message)
    pid = os.fork()
    if pid:
        os.close(fds[0])
        return pid
    listener.close()
    connection.close()
    os._exit(_run_task(fds[0], request))  # never back into the loop


def _run_task(output: int, request: _Request) -> int:
    """In the forked child: become the task process and run executor_main; its exit status."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["executor_main", *request["argv"]]
    code = 0
    try:
        runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # the task's own error, printed as Python would
        import traceback

        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):  # what the interpreter does at exit: join threads, then atexit
        import atexit
        import threading

        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def _reap(waiting: dict[int, socket.socket]) -> None:
    while waiting:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if not pid:
            return
        connection = waiting.pop(pid, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.sendall(_CODE.pack(os.waitstatus_to_exitcode(status)))
            connection.close()


def _recv_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the warm starter's peer closed the connection")
        data += chunk
    return data


# --- the runner's side --------------------------------------------------------------------------------


def run_task(
    path: str, component: tuple[str, list[str]], env: dict[str, str], echo: Callable[[str], None]
) -> int:
    """Run a ``component`` (:func:`executor_argv` of its command) through the starter at ``path``.

    Returns its exit status; its output goes to ``echo``. Mirrors what KFP's ``run_local_subprocess``
    does for the same command: the component source in a fresh ``ephemeral_component.py``,
    ``_KFP_RUNTIME=true``, stdout and stderr as one stream.
    """
    source, args = component
    program = Path(tempfile.mkdtemp())
    module = program / "ephemeral_component.py"
    module.write_text(source)
    request: _Request = {
        "argv": ["--component_module_path", str(module), *args],
        "env": {**env, "_KFP_RUNTIME": "true"},
        "cwd": os.getcwd(),
    }
    message = json.dumps(request).encode()
    read_end, write_end = os.pipe()
    try:
        with _connect(path) as connection:
            connection.sendall(_CODE.pack(len(message)))
            socket.send_fds(connection, [message], [write_end])
            os.close(write_end)
            write_end = -1
            with os.fdopen(read_end, encoding="utf-8", errors="replace") as output:
                read_end = -1
                for line in output:
                    echo(line)
            try:
                return int(_CODE.unpack(_recv_exactly(connection, _CODE.size))[0])
            except ConnectionError:
                echo("the warm starter ended before the task reported its exit status\n")
                return 1
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
        module.unlink(missing_ok=True)
        program.rmdir()


def _connect(path: str, wait: float = 120.0) -> socket.socket:
    """A connection to the starter, waiting while it starts (it binds its socket first thing)."""
    deadline = time.monotonic() + wait
    while True:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(path)
            return connection
        except (FileNotFoundError, ConnectionRefusedError):
            connection.close()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the warm task starter at {path} did not start within {wait:.0f} s"
                ) from None
            time.sleep(0.02)


@dataclass(frozen=True)
class Starter:
    """A running warm starter: its socket and its process."""

    path: str
    process: subprocess.Popen[bytes]

    def alive(self) -> bool:
        """Whether the starter still runs (if not, tasks start as KFP starts them)."""
        return self.process.poll() is None


@contextlib.contextmanager
def warm_tasks() -> Iterator[Starter]:
    """Start the warm starter for this run (in this environment); yield it; stop it and its tasks.

    The starter runs in a session of its own, so stopping the run (its end, an error, Ctrl-C) ends every
    task it started with it.
    """
    with tempfile.TemporaryDirectory(prefix="hala-warm-") as folder:
        path = str(Path(folder) / "starter.sock")
        process = subprocess.Popen(
            [sys.executable, "-m", "hala_pipelines.warm_start", path, str(os.getpid())],
            start_new_session=True,
        )
        try:
            yield Starter(path, process)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
