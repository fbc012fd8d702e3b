"""A throwaway PostgreSQL and an `mlflow server` on it, set up as the cluster deploys it.

A pytest plugin (``pytest_plugins`` in tests/conftest.py); both fixtures are session scoped:

``postgres``
    A PostgreSQL cluster in a temporary folder, listening on loopback only (a free port, no Unix
    socket), password (SCRAM) authentication, ``fsync`` off. It runs as an unprivileged user because
    postgres refuses to run as root: the current user when not root, else ``postgres`` (the Debian
    package's user) or ``nobody``. The server binaries come from ``$HALA_PG_BIN``, from ``initdb`` /
    ``pg_ctl`` on ``PATH``, or from ``/usr/lib/postgresql/<version>/bin``; without them the tests that
    use the fixture are skipped, saying so.
``mlflow_postgres``
    ``mlflow server`` with the arguments of manifests/base/mlflow/deployment.yaml: basic-auth (users in
    the ``mlflow_auth`` database, configured by manifests/secrets/basic_auth.ini.template),
    ``--serve-artifacts`` (to a local folder), ``--workers 2``, ``--allowed-hosts``, no job execution,
    and the backend store (database ``mlflow``, owned by a non-superuser role ``mlflow``) given as
    ``MLFLOW_BACKEND_STORE_URI``, never in the arguments.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_BIN_ENV = "HALA_PG_BIN"
PG_BINARIES = ("initdb", "pg_ctl", "postgres")
_UNPRIVILEGED_USERS = ("postgres", "nobody")  # tried in turn when the tests run as root

# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the driver installed here and in the server image
# (manifests/images/mlflow-server/Containerfile) is psycopg2, so the URIs name it.
SCHEME = "postgresql+psycopg2"
APP_ROLE, APP_PASSWORD = "mlflow", "mlflow-test-pw"  # the backend store's owner, as in the Secret
ADMIN, ADMIN_PASSWORD = "admin", "pg-admin-password"  # the tracking server's bootstrap admin
AUTH_TEMPLATE = Path(__file__).resolve().parents[1] / "manifests" / "secrets" / "basic_auth.ini.template"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version(bin_dir: Path) -> float:
    try:
        return float(bin_dir.parent.name)
    except ValueError:
        return 0.0


def find_pg_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None when this machine has none."""
    candidates = []
    if os.environ.get(PG_BIN_ENV):
        candidates.append(Path(os.environ[PG_BIN_ENV]))
    for name in ("pg_ctl", "initdb"):  # Debian links only some of them onto PATH: follow the link
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in PG_BINARIES):
            return folder
    return None


def _unprivileged() -> pwd.struct_passwd | None:
    """The user postgres runs as: None to stay the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    for name in _UNPRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            if user.pw_uid != 0:
                return user
    pytest.fail(
        f"the tests run as root and no unprivileged user ({', '.join(_UNPRIVILEGED_USERS)}) exists for "
        "postgres, which refuses to run as root: `useradd --system postgres`"
    )


def _shared_tmp() -> str:
    """A temporary folder another user can reach (pytest's own is private to this user)."""
    base = Path(tempfile.gettempdir()).resolve()
    reachable = all(p.stat().st_mode & 0o001 for p in (base, *base.parents))
    return str(base) if reachable else "/tmp"


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL cluster on loopback."""

    bin_dir: Path
    data_dir: Path
    port: int
    superuser: str
    password: str
    version: str
    host: str = "127.0.0.1"

    def uri(self, database: str, user: str | None = None, password: str | None = None) -> str:
        """A SQLAlchemy URI of ``database`` (as the superuser unless ``user`` is given)."""
        user, password = user or self.superuser, password or self.password
        return f"{SCHEME}://{user}:{password}@{self.host}:{self.port}/{database}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser, each in its own transaction (CREATE DATABASE needs that)."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.host, port=self.port, user=self.superuser, password=self.password, dbname=database
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()


class _Cluster:
    """initdb, pg_ctl start and stop, as an unprivileged user when running as root."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _unprivileged()
        self.root = Path(tempfile.mkdtemp(prefix="hala-pg-", dir=_shared_tmp()))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        as_user: dict[str, Any] = {}
        if self.user is not None:
            as_user = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        if self.user is not None:
            env |= {"HOME": str(self.root), "USER": self.user.pw_name, "LOGNAME": self.user.pw_name}
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **as_user,
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no server log)"

    def init(self, superuser: str, password: str) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        done = self.run(
            "initdb",
            *("-D", str(self.data), "-U", superuser, f"--pwfile={pwfile}"),
            *("--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C"),
            "--no-sync",
        )
        pwfile.unlink()
        if done.returncode != 0:
            pytest.fail(f"initdb failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def start(self) -> int:
        """Start on a free loopback port (another free one if it was taken meanwhile); returns it."""
        for _ in range(3):
            port = free_port()
            (self.data / "postgresql.auto.conf").write_text(
                "# written by tests/pg_server.py\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {port}\n"
                "unix_socket_directories = ''\n"  # TCP only: no socket folder to own or clash on
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 100\n"
            )
            if self.user is not None:
                os.chown(self.data / "postgresql.auto.conf", self.user.pw_uid, self.user.pw_gid)
            done = self.run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")
            if done.returncode == 0:
                return port
            if "could not bind" not in self.log_tail():
                break
        pytest.fail(f"pg_ctl start failed:\n{done.stdout[-1000:]}{done.stderr[-1000:]}\n{self.log_tail()}")

    def stop(self) -> None:
        done = self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")
        pidfile = self.data / "postmaster.pid"
        if done.returncode != 0 and pidfile.exists():  # pg_ctl could not stop it: end the postmaster
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster for the session; skips the test when no server binaries are installed."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in $HALA_PG_BIN, on PATH or in "
            "/usr/lib/postgresql/*/bin: install the postgresql package (CI has it)"
        )
    pytest.importorskip("psycopg2", reason="psycopg2 (requirements/local.txt) is needed for PostgreSQL")
    cluster = _Cluster(bin_dir)
    started = False
    try:
        superuser, password = "postgres", "pg-superuser-pw"
        cluster.init(superuser, password)
        port = cluster.start()
        started = True
        version = cluster.run("postgres", "--version").stdout.strip()
        yield Postgres(bin_dir, cluster.data, port, superuser, password, version)
    finally:
        if started:
            cluster.stop()
        cluster.remove()


@dataclass(frozen=True)
class MlflowServer:
    """A running tracking server: its URL (Host admitted), admin credentials and stores."""

    url: str
    username: str
    password: str
    backend_store_uri: str
    auth_database_uri: str
    artifacts: Path
    log: Path

    def env(self) -> dict[str, str]:
        """The environment a pipeline task gets: tracking URI and credentials."""
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a query on the backend store, read directly (what the server wrote, not what it says)."""
        import psycopg2
        from sqlalchemy.engine import make_url

        url = make_url(self.backend_store_uri)
        connection = psycopg2.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def column_limit(self, table: str, column: str) -> int | None:
        """The character limit of a column of the backend store (None: unlimited, as TEXT)."""
        rows = self.query(
            "SELECT character_maximum_length FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = %s",
            table,
            column,
        )
        assert rows, f"no column {table}.{column} in the backend store"
        return None if rows[0][0] is None else int(rows[0][0])


def start_server(command: list[str], env: dict[str, str], root: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (so stopping it ends every worker), logging to root."""
    log = (root / "server.log").open("w")
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
    )


def wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 240) -> None:
    """Wait until ``url/health`` answers; fail with the server's log if it exits or takes too long.

    A cold start of ``mlflow server`` on two shared cores took up to a minute here.
    """
    deadline = time.monotonic() + timeout_s
    while not _health(url):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the server at {url} did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.3)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started by :func:`start_server`, and any worker that outlives it."""
    with contextlib.suppress(ProcessLookupError):  # it may have exited already
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with contextlib.suppress(ProcessLookupError):  # a worker that outlived the server
        os.killpg(process.pid, signal.SIGKILL)


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def mlflow_postgres(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on ``postgres`` with the deployment's arguments, for the session."""
    root = tmp_path_factory.mktemp("mlflow-postgres")
    # The databases and their owner as manifests/components/postgres creates them (create-auth-db.sql).
    postgres.execute(
        f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'",
        f"CREATE DATABASE mlflow OWNER {APP_ROLE}",
        f"CREATE DATABASE mlflow_auth OWNER {APP_ROLE}",
    )
    backend = postgres.uri("mlflow", APP_ROLE, APP_PASSWORD)
    auth_db = postgres.uri("mlflow_auth", APP_ROLE, APP_PASSWORD)
    # The deployed basic-auth config (the Secret's basic_auth.ini), pointed at this auth database.
    ini, found = re.subn(r"(?m)^database_uri = .*$", f"database_uri = {auth_db}", AUTH_TEMPLATE.read_text())
    assert found == 1, f"{AUTH_TEMPLATE} has no single database_uri line"
    (root / "basic_auth.ini").write_text(ini)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MLFLOW_BACKEND_STORE_URI": backend,  # as deployed: from the Secret, never in the arguments
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
        *("--serve-artifacts", "--artifacts-destination", str(root / "artifacts")),
        *("--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"),
    ]
    log_path = root / "server.log"
    process = start_server(command, env, root)
    try:
        wait_healthy(url, process, log_path)
        server = MlflowServer(url, ADMIN, ADMIN_PASSWORD, backend, auth_db, root / "artifacts", log_path)
        _warm_up(server)
        yield server
    finally:
        stop_server(process)


def _warm_up(server: MlflowServer) -> None:
    """One authenticated call per worker, so the first test does not pay for imports and tables."""
    from mlflow.tracking import MlflowClient

    with pytest.MonkeyPatch.context() as patch:
        for key, value in server.env().items():
            patch.setenv(key, value)
        patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "180")
        for _ in range(2):
            MlflowClient(server.url).search_experiments(max_results=1)
