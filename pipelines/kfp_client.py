"""Submit, schedule and list pipeline runs on a Kubeflow Pipelines server.

The requests are computed by small pure functions (:func:`plan_submit`, :func:`validate_cron`); a thin
layer hands them to ``kfp.Client`` (any object with its methods, so tests pass a recording fake).
Before uploading, :func:`check_backend` reads the server's version and refuses one older than
:data:`MIN_BACKEND`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hala.errors import HalaError

if TYPE_CHECKING:  # the CLI imports this module on every `hala` call: keep it light
    from hala.config import Preset

TOKEN_ENV = "KF_PIPELINES_TOKEN"  # bearer token (e.g. `kubectl create token ...`); --existing-token wins
HOST_ENV = "KF_PIPELINES_ENDPOINT"  # kfp.Client's own variable for the API endpoint
UI_HOST_ENV = "KF_PIPELINES_UI_ENDPOINT"  # kfp.Client's own variable for the UI, when it differs

KfpClient = Any  # kfp.Client, or a test double with the same methods

# The oldest KFP backend the compiled pipeline runs on. 2.16.0 brought container security contexts
# (kubeflow/pipelines#12782; 2.15's compiler rejects the `securityContext` field the tasks set) and
# 2.17.0 the propagation of a ParallelFor's state up to the exit handler (kubeflow/pipelines#13322).
MIN_BACKEND = (2, 17, 0)
ALLOW_OLD_FLAG = "--allow-old-backend"
HEALTHZ_PATH = "/apis/v2beta1/healthz"


class KfpError(HalaError):
    """A request to the Kubeflow Pipelines server cannot be made or was refused."""


class CronError(HalaError, ValueError):
    """A schedule is not a 6-field KFP cron expression."""


@dataclass(frozen=True)
class SubmitPlan:
    """Everything a submission sends, computed before any server is contacted."""

    pipeline_name: str
    version_name: str
    description: str
    experiment: str
    run_name: str
    params: dict[str, str]
    namespace: str | None = None


@dataclass(frozen=True)
class Submitted:
    """What the server created: the pipeline version and the run (or recurring run)."""

    pipeline_id: str
    version_id: str
    experiment_id: str
    run_id: str


@dataclass(frozen=True)
class RunRow:
    """One line of ``hala runs``."""

    run_id: str
    name: str
    state: str
    created: str


@dataclass(frozen=True)
class Connection:
    """How to reach the server: ``host=None`` inside the cluster (kfp.Client uses the service account)."""

    host: str | None = None
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)


def pipeline_name(preset_name: str) -> str:
    """The KFP pipeline a preset is uploaded as (the name the compiled YAML carries)."""
    return f"hala-{preset_name}"


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")


def plan_submit(
    preset: Preset,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    version_name: str | None = None,
    namespace: str | None = None,
    now: datetime | None = None,
    extra_params: dict[str, str] | None = None,
) -> SubmitPlan:
    """The submission of ``preset``: names default to the preset, its fingerprint and the UTC time.

    The KFP run name is also passed as the pipeline's ``run_name`` parameter, so the parent MLflow
    run carries the same name as the run in the Kubeflow UI.
    """
    now = now or datetime.now(UTC)
    name = pipeline_name(preset.name)
    run = run_name or f"{name}-{_stamp(now)}"
    return SubmitPlan(
        pipeline_name=name,
        version_name=version_name or f"{name}-{preset.fingerprint()[:12]}-{_stamp(now)}",
        description=f"HALA preset '{preset.name}' (fingerprint {preset.fingerprint()[:12]})",
        experiment=experiment or preset.tracking.experiment,
        run_name=run,
        params={"run_name": run, **(extra_params or {})},
        namespace=namespace,
    )


_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_FIELDS = (  # name, low, high, names allowed in place of numbers
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day-of-week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
CRON_FORMAT = (
    "KFP cron has 6 fields: second minute hour day-of-month month day-of-week "
    "(for example '0 0 2 * * *' is 02:00 every day, '0 30 1 * * SUN' 01:30 every Sunday), "
    "or a descriptor such as @daily or '@every 6h'"
)


def _check_value(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    if text.upper() in names:
        return True
    return text.isdigit() and low <= int(text) <= high


def _check_part(part: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    base, _, step = part.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return False
    if base == "*":
        return True
    lo, dash, hi = base.partition("-")
    if dash:
        return _check_value(lo, low, high, names) and _check_value(hi, low, high, names)
    return _check_value(base, low, high, names)


def validate_cron(expression: str) -> str:
    """The expression, spaces normalised, when KFP accepts it; else :class:`CronError` giving the format."""
    expr = " ".join(expression.split())
    if expr in _DESCRIPTORS or re.fullmatch(r"@every (\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", expr):
        return expr
    fields = expr.split(" ") if expr else []
    if len(fields) != len(_CRON_FIELDS):
        raise CronError(f"cron expression {expression!r} has {len(fields)} field(s); {CRON_FORMAT}")
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        wildcard = text == "?" and name in ("day-of-month", "day-of-week")
        if not wildcard and not all(_check_part(p, low, high, names) for p in text.split(",")):
            raise CronError(
                f"cron expression {expression!r}: field {name} {text!r} is not valid "
                f"(values {low}-{high}, '*', ranges a-b, lists a,b and steps /n); {CRON_FORMAT}"
            )
    return expr


def kfp_run_link(host: str, run_id: str) -> str:
    """The Kubeflow UI page of a run: ``<host>/#/runs/details/<run_id>``."""
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


def connect(conn: Connection) -> KfpClient:
    """A ``kfp.Client`` for ``conn`` (the token falls back to ``$KF_PIPELINES_TOKEN``)."""
    try:
        import kfp
    except ImportError:  # pragma: no cover - the pipeline extra is installed wherever hala submits
        raise KfpError("the kfp package is missing: pip install 'hala[pipeline]'") from None
    token = conn.token or os.environ.get(TOKEN_ENV) or None
    try:
        with warnings.catch_warnings():  # kfp warns on every construction that it needs a KFP 2 server
            warnings.simplefilter("ignore", FutureWarning)
            return kfp.Client(host=conn.host, existing_token=token)
    except Exception as exc:  # kfp raises bare exceptions (connection errors, timeouts) here
        where = conn.host or os.environ.get(HOST_ENV) or "the in-cluster service ml-pipeline.kubeflow"
        raise KfpError(
            f"cannot reach Kubeflow Pipelines at {where}: {exc}; check --host (the API endpoint, e.g. "
            f"http://localhost:8080 after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`) "
            f"and the token (--existing-token or ${TOKEN_ENV})"
        ) from exc


@dataclass(frozen=True)
class Backend:
    """The release tag and commit a KFP server reports on its healthz endpoint (None when absent)."""

    tag: str | None
    commit: str | None

    @property
    def version(self) -> tuple[int, int, int] | None:
        """``(major, minor, patch)`` of the tag, or None for a dev build (``master``, ``unknown``, none)."""
        return parse_backend_version(self.tag)


_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+.][0-9A-Za-z.+-]*)?")


def parse_backend_version(tag: str | None) -> tuple[int, int, int] | None:
    """``"2.17.0"`` -> ``(2, 17, 0)``; a ``v`` prefix and a suffix (``-rc.1``) are allowed, else None.

    A pre-release counts as its release (``2.17.0-rc.1`` passes a 2.17.0 minimum).
    """
    match = _VERSION.fullmatch(tag.strip()) if tag else None
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def backend_from_healthz(body: Mapping[str, Any]) -> Backend:
    """The tag and commit in a healthz body, written either by the API server or by the UI server.

    The API server (``ml-pipeline``, in-cluster) answers ``{"commit_sha", "tag_name", "multi_user",
    "pipeline_store"}``: kubeflow/pipelines backend/src/apiserver/main.go, ``healthzResponse`` and
    ``newHealthzResponse`` (TAG_NAME/COMMIT_SHA of the image, default "unknown"), commit
    7b70c7b95f6832772efd6fd0029a4024491a0f44; tag 2.15.0 (8fe8d7bdd88f) writes the same keys. The UI
    server (``ml-pipeline-ui``, what a port-forward or the Kubeflow gateway reaches) answers the same
    path with its own stats, ``apiServerTagName`` and ``apiServerCommitHash`` copied from those keys:
    frontend/server/handlers/healthz.ts, ``getHealthzHandler``, same commit.
    """
    tag = body.get("tag_name") or body.get("apiServerTagName")
    commit = body.get("commit_sha") or body.get("apiServerCommitHash")
    return Backend(str(tag) if tag else None, str(commit) if commit else None)


def read_healthz(client: KfpClient) -> dict[str, Any]:
    """The JSON body of ``GET /apis/v2beta1/healthz``, through the client's own endpoint and credentials.

    ``kfp.Client.get_kfp_healthz()`` parses the body into the proto's ``GetHealthzResponse``, which
    has only ``multi_user`` and ``pipeline_store`` (kubeflow/pipelines backend/api/v2beta1/healthz.proto,
    commit 7b70c7b95f6832772efd6fd0029a4024491a0f44), so the version keys the server adds are dropped.
    Hence the same generated call, with ``_preload_content=False``, which returns the raw response.
    """
    try:
        response = client._healthz_api.healthz_service_get_healthz(
            _preload_content=False, _request_timeout=30
        )
        status = int(getattr(response, "status", 200))
        if not 200 <= status < 300:
            raise KfpError(f"GET {HEALTHZ_PATH} answered HTTP {status}")
        body = json.loads(response.data or b"{}")
    except KfpError:
        raise
    except Exception as exc:  # kfp_server_api raises bare urllib3/ApiException errors
        raise KfpError(f"GET {HEALTHZ_PATH} failed: {exc}") from exc
    return body if isinstance(body, dict) else {}


def _needed() -> str:
    return ".".join(map(str, MIN_BACKEND))


def check_backend(client: KfpClient, *, allow_old: bool = False) -> str | None:
    """Refuse a KFP backend older than :data:`MIN_BACKEND`, before anything is uploaded.

    Returns a warning to print, or None when the backend is recent enough. A backend that reports
    no release version (a dev build: tag ``master``, ``unknown`` or none) only warns: it cannot be
    checked. ``allow_old`` (``--allow-old-backend``) turns every refusal into a warning.
    """
    override = f"pass {ALLOW_OLD_FLAG} to upload anyway"
    try:
        backend = backend_from_healthz(read_healthz(client))
    except KfpError as exc:
        if allow_old:
            return f"cannot read the KFP backend's version ({exc}); going on ({ALLOW_OLD_FLAG})"
        raise KfpError(
            f"cannot read the Kubeflow Pipelines backend's version ({exc}): this pipeline needs "
            f"{_needed()} or newer; check --host and the token, or {override}"
        ) from exc
    version = backend.version
    if version is None:
        return (
            f"the Kubeflow Pipelines backend reports no release version (tag {backend.tag!r}, commit "
            f"{backend.commit!r}; a dev build?): cannot check it is {_needed()} or newer; going on"
        )
    if version >= MIN_BACKEND:
        return None
    found = ".".join(map(str, version))
    why = (
        f"Kubeflow Pipelines backend {backend.tag} is older than {_needed()}, which this pipeline needs "
        "(2.16 added container security contexts, kubeflow/pipelines#12782; 2.17.0 reports a ParallelFor's "
        "status to the exit handler, #13322; Kubeflow 1.11 ships 2.15)"
    )
    if allow_old:
        return f"{why}; uploading anyway ({ALLOW_OLD_FLAG}): runs may fail on {found}"
    raise KfpError(f"{why}; nothing was uploaded: upgrade Kubeflow Pipelines, or {override}")


@contextmanager
def compiled_package(compile_to: Callable[[Path], Path]) -> Iterator[Path]:
    """A temporary pipeline YAML written by ``compile_to(path)``, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="hala-submit-") as tmp:
        yield compile_to(Path(tmp) / "pipeline.yaml")


def compile_preset_package(preset: str, overrides: Mapping[str, Any] | None = None) -> Callable[[Path], Path]:
    """A compile step for :func:`compiled_package` that compiles ``preset`` as ``hala compile`` does."""

    def run(path: Path) -> Path:
        from hala_pipelines.compile import compile_preset

        return compile_preset(preset, path, overrides)

    return run


def upload(client: KfpClient, package: Path, plan: SubmitPlan) -> tuple[str, str]:
    """Upload ``package`` as pipeline ``plan.pipeline_name``, or as a new version when it exists already.

    Returns the pipeline id and the id of the version just uploaded. A new pipeline's first version
    is the one KFP creates with it (named like the pipeline).
    """
    pipeline_id = client.get_pipeline_id(plan.pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(
            str(package),
            pipeline_name=plan.pipeline_name,
            description=plan.description,
            namespace=plan.namespace,
        )
        versions = client.list_pipeline_versions(pipeline.pipeline_id, page_size=1, sort_by="created_at desc")
        if not versions.pipeline_versions:
            raise KfpError(f"pipeline {plan.pipeline_name} was uploaded but the server lists no version")
        return str(pipeline.pipeline_id), str(versions.pipeline_versions[0].pipeline_version_id)
    version = client.upload_pipeline_version(
        str(package),
        pipeline_version_name=plan.version_name,
        pipeline_id=pipeline_id,
        description=plan.description,
    )
    return str(pipeline_id), str(version.pipeline_version_id)


def _experiment_id(client: KfpClient, plan: SubmitPlan) -> str:
    return str(client.create_experiment(plan.experiment, namespace=plan.namespace).experiment_id)


def submit(client: KfpClient, package: Path, plan: SubmitPlan) -> Submitted:
    """Upload the package and start one run of the uploaded version in ``plan.experiment``."""
    pipeline_id, version_id = upload(client, package, plan)
    experiment_id = _experiment_id(client, plan)
    run = client.run_pipeline(
        experiment_id=experiment_id,
        job_name=plan.run_name,
        params=plan.params,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    return Submitted(pipeline_id, version_id, experiment_id, str(run.run_id))


def schedule(
    client: KfpClient, package: Path, plan: SubmitPlan, cron: str, *, max_concurrency: int, catchup: bool
) -> Submitted:
    """Upload the package and create a recurring run of that version on ``cron`` (validated first)."""
    expression = validate_cron(cron)
    if max_concurrency < 1:
        raise KfpError(f"--max-concurrency must be at least 1, got {max_concurrency}")
    pipeline_id, version_id = upload(client, package, plan)
    experiment_id = _experiment_id(client, plan)
    recurring = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=plan.run_name,
        description=plan.description,
        cron_expression=expression,
        max_concurrency=max_concurrency,
        no_catchup=not catchup,
        params=plan.params,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    return Submitted(pipeline_id, version_id, experiment_id, str(recurring.recurring_run_id))


def recent_runs(client: KfpClient, limit: int, namespace: str | None = None) -> list[RunRow]:
    """The newest ``limit`` runs, newest first."""
    if limit < 1:
        raise KfpError(f"--limit must be at least 1, got {limit}")
    response = client.list_runs(page_size=limit, sort_by="created_at desc", namespace=namespace)
    rows = []
    for run in response.runs or []:
        created = run.created_at.isoformat() if isinstance(run.created_at, datetime) else str(run.created_at)
        rows.append(RunRow(str(run.run_id), str(run.display_name), str(run.state), created))
    return rows


def format_runs(rows: list[RunRow]) -> str:
    """``hala runs`` output: one run per line under a header."""
    lines = [f"{'RUN ID':<38}{'STATE':<12}{'CREATED':<27}NAME"]
    lines += [f"{r.run_id:<38}{r.state:<12}{r.created:<27}{r.name}" for r in rows]
    return "\n".join(lines)
