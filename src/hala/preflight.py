"""Preflight: the pipeline's first stage checks what later stages need, before any GPU is requested.

Five checks, all run, every failure collected into one :class:`PreflightError` whose message names each
missing thing and how to fix it (which Secret, which manifest, which command):

1. the MLflow tracking server answers (``GET <uri>/health`` for http(s) URIs, then an authenticated API
   call, so bad credentials and a refused Host header show up here; a sqlite or file store must open);
2. the model registry is writable: a throwaway registered model ``hala-preflight-<random>`` is created,
   tagged and deleted (a basic-auth user may create models and owns the ones it creates);
3. the required environment variables (the Secrets a task reads) are set and not empty; values are
   never printed;
4. every output folder can be created and written by this process's uid (a probe file is created and
   removed); on the cluster that is the root of the work claim, which must be writable by
   :data:`PIPELINE_UID` without an fsGroup, and the error says how to make it so;
5. every SFT base model's chat template can be masked for assistant-only loss: the preset names a marked
   training copy for it (``training.training_chat_template``, as the 9B's QCRI/Fanar-1-9B-Instruct
   needs), or it has ``{% generation %}`` markers, or it is one TRL swaps for a marked training copy
   (:func:`check_sft_chat_template`; only the template file is downloaded), so a model TRL cannot mask
   fails here and not on the GPU nodes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from hala.errors import HalaError

# How to provide each variable on the cluster (manifests/secrets/*.yaml hold the templates).
ENV_FIXES: dict[str, str] = {
    "HF_TOKEN": "Secret hala-hf-token, key token (manifests/secrets/hala-hf-token.yaml): "
    "kubectl -n hala create secret generic hala-hf-token --from-literal=token=...",
    "MLFLOW_TRACKING_URI": "Secret hala-mlflow, key tracking_uri (manifests/secrets/hala-mlflow.yaml)",
    "MLFLOW_TRACKING_USERNAME": "Secret hala-mlflow, key username (manifests/secrets/hala-mlflow.yaml)",
    "MLFLOW_TRACKING_PASSWORD": "Secret hala-mlflow, key password (manifests/secrets/hala-mlflow.yaml)",
    "AWS_ACCESS_KEY_ID": "Secret hala-object-store, key access_key_id "
    "(manifests/secrets/hala-object-store.yaml)",
    "AWS_SECRET_ACCESS_KEY": "Secret hala-object-store, key secret_access_key "
    "(manifests/secrets/hala-object-store.yaml)",
    "MLFLOW_S3_ENDPOINT_URL": "s3_endpoint_url of the overlay's params (manifests/overlays/*/params.yaml)",
}
# The uid every pipeline task runs as, with no fsGroup: RUN_AS_USER in components/images.py (a test
# checks they agree; the library does not import the components package).
PIPELINE_UID = 10001
WORK_VOLUME_FIX = (
    f"on the cluster this is the root of the hala-work claim (manifests/base/pvc.yaml, mounted at "
    f"cluster.work_root), which must be writable by uid {PIPELINE_UID} with no fsGroup: chown it once "
    f"(`chown {PIPELINE_UID}:0 <claim root> && chmod 0775 <claim root>`, the Job in docs/cluster.md, "
    "'Work volume ownership') or use a storage class that mounts it as that uid (its uid/gid or "
    "mount-permission option); then retry the run"
)
SERVER_FIX = (
    "check the tracking_uri key of the hala-mlflow Secret and that the server is up: "
    "kubectl -n hala rollout status deploy/hala-mlflow (manifests/base/mlflow/); locally, leave "
    "MLFLOW_TRACKING_URI unset to use sqlite"
)


class PreflightError(HalaError):
    """One or more preflight checks failed; the message lists each with its fix."""


class CheckFailed(Exception):
    """A single check failed: what is wrong and how to fix it."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}; fix: {fix}")


def required_env_for(
    reads_hub: bool, artifact_uri: str | None = None, tracking_auth: bool = False
) -> list[str]:
    """The variables a run needs: ``HF_TOKEN`` to read the hub, bucket credentials for direct s3 artifacts.

    With the cluster's tracking server (``--serve-artifacts``) artifacts go through the server, so
    pipeline pods need no bucket credentials; ``tracking_auth`` adds the basic-auth user.
    """
    names = ["HF_TOKEN"] if reads_hub else []
    if tracking_auth:
        names += ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]
    if artifact_uri and artifact_uri.startswith("s3://"):
        names += ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    return names


def check_env(names: Sequence[str], fixes: Mapping[str, str] = ENV_FIXES) -> str:
    """Fail when any of ``names`` is unset or empty, naming each variable and where it comes from."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        hints = "; ".join(f"{n} <- {fixes.get(n, 'set it in the task environment')}" for n in missing)
        raise CheckFailed(f"environment variable(s) {missing} unset or empty", hints)
    return f"environment: {list(names)} set"


def _probe_write(folder: Path) -> None:
    """Create a new probe file in ``folder``, write to it and remove it; ``OSError`` when it cannot."""
    probe = folder / f".hala-preflight-{uuid.uuid4().hex[:12]}"
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, b"hala preflight probe\n")
    finally:
        os.close(fd)
        probe.unlink()


def _ownership(folder: Path) -> str:
    """``owner uid U gid G, mode drwxr-xr-x`` of ``folder``, or why it cannot be read."""
    try:
        info = folder.stat()
    except OSError as error:
        return f"cannot stat it: {error.strerror or error}"
    return f"owner uid {info.st_uid} gid {info.st_gid}, mode {stat.filemode(info.st_mode)}"


def _writable_fix(folder: Path, uid: int) -> str:
    """How to make ``folder`` writable: the work claim's ownership, and locally a chown for ``uid``."""
    if uid == PIPELINE_UID:
        return WORK_VOLUME_FIX
    return (
        f"make it writable by uid {uid} (`chown {uid} {folder}`) or mount a volume there; "
        f"pipeline tasks run as uid {PIPELINE_UID}; {WORK_VOLUME_FIX}"
    )


def check_output_dir(path: str | Path) -> str:
    """Create ``path`` if needed and create, write and remove a probe file in it as this process's uid."""
    folder = Path(path)
    uid = os.geteuid()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe_write(folder)
    except OSError as error:
        raise CheckFailed(
            f"output folder {folder} is not writable by uid {uid} ({_ownership(folder)}; "
            f"{type(error).__name__}: {error.strerror or error})",
            _writable_fix(folder, uid),
        ) from error
    return f"output folder {folder} writable by uid {uid}"


@contextlib.contextmanager
def _quick_http(timeout_s: float) -> Iterator[None]:
    """Make MLflow's client fail fast (no retries with back-off) unless the user set these already."""
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(max(timeout_s, 1))),
    }
    added = {k: v for k, v in settings.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _shown(uri: str) -> str:
    """``uri`` as it may be printed: any password in it replaced by ``***``."""
    from hala.tracking import mask_uri

    return mask_uri(uri)


def _scrubbed(text: str, uri: str) -> str:
    """``text`` (an error from a client given ``uri``) with ``uri``'s password masked wherever it appears.

    MLflow's client puts the whole URL, credentials included, in its connection errors.
    """
    password = urllib.parse.urlsplit(uri).password
    return text.replace(f":{password}@", ":***@") if password else text


def _without_userinfo(uri: str) -> str:
    """``uri`` without ``user:password@``: urllib would take them for part of the host name."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_health(tracking_uri: str, timeout_s: float) -> str:
    """``GET <uri>/health`` must answer 200 (the endpoint needs neither credentials nor an allowed Host)."""
    url = _without_userinfo(tracking_uri).rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CheckFailed(
            f"MLflow tracking server {_shown(tracking_uri)} does not answer "
            f"({_scrubbed(str(reason), tracking_uri)})",
            SERVER_FIX,
        ) from error
    if status != 200:
        raise CheckFailed(f"MLflow tracking server {url} answered HTTP {status}", SERVER_FIX)
    return f"tracking server {_shown(tracking_uri)} healthy"


def _http_status(error: Exception) -> int | None:
    """The HTTP status in an MLflow client error ("... failed with error code 401 != 200 ...")."""
    match = re.search(r"error code (\d{3})\b", str(error))
    return int(match.group(1)) if match else None


def _api_fix(error: Exception) -> str:
    status = _http_status(error)
    if status == 401:
        return (
            "the server refused the credentials: set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD "
            "from the hala-mlflow Secret (keys username, password) to a user created on the server "
            "(docs/cluster.md)"
        )
    if status == 403:
        return (
            "the server refused the request (Host header not in --allowed-hosts, or the user lacks "
            "permission): see --allowed-hosts in manifests/base/mlflow/deployment.yaml and the user's "
            "permissions"
        )
    return SERVER_FIX


def check_tracking(tracking_uri: str, timeout_s: float) -> str:
    """The tracking store answers an (authenticated) API call; sqlite/file stores must open."""
    from mlflow.tracking import MlflowClient

    passed = [check_health(tracking_uri, timeout_s)] if _is_http(tracking_uri) else []
    try:
        with _quick_http(timeout_s):
            MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    except Exception as error:
        fix = _api_fix(error) if _is_http(tracking_uri) else "check the store path exists and is writable"
        raise CheckFailed(
            f"MLflow tracking store {_shown(tracking_uri)} fails: {_first_line(error, tracking_uri)}", fix
        ) from error
    return "; ".join([*passed, f"tracking store {_shown(tracking_uri)} opens"])


def check_registry_writable(tracking_uri: str, timeout_s: float) -> str:
    """Create, tag and delete a throwaway registered model ``hala-preflight-<random>``."""
    from mlflow.tracking import MlflowClient

    name = f"hala-preflight-{uuid.uuid4().hex[:12]}"
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        with _quick_http(timeout_s):
            client.create_registered_model(name, description="hala preflight probe; safe to delete")
            try:
                client.set_registered_model_tag(name, "hala.preflight", "probe")
            finally:
                client.delete_registered_model(name)
    except Exception as error:
        fix = _api_fix(error) if _is_http(tracking_uri) else "check the store file is writable"
        raise CheckFailed(
            f"model registry at {_shown(tracking_uri)} is not writable: {_first_line(error, tracking_uri)}",
            fix,
        ) from error
    return f"model registry at {_shown(tracking_uri)} writable (created and deleted {name})"


def hub_chat_template(model_id: str, revision: str) -> str | None:
    """The chat template a hub model ships, found as transformers finds it (and TRL's template checker).

    ``chat_template.jinja`` first, then the ``chat_template`` of ``tokenizer_config.json`` (for named
    variants, the ``default`` one); only those small files are downloaded.
    """
    import json

    from huggingface_hub import HfApi, hf_hub_download

    files = HfApi().list_repo_files(model_id, revision=revision)
    if "chat_template.jinja" in files:
        path = hf_hub_download(model_id, "chat_template.jinja", revision=revision)
        return Path(path).read_text(encoding="utf-8")
    if "tokenizer_config.json" in files:
        path = hf_hub_download(model_id, "tokenizer_config.json", revision=revision)
        template = json.loads(Path(path).read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, list):
            template = {variant["name"]: variant["template"] for variant in template}.get("default")
        return template if isinstance(template, str) else None
    return None


def check_sft_chat_template(
    model: str, fetch_template: Callable[[], str | None], training_template: str | None = None
) -> str:
    """An SFT base model's chat template can be masked for assistant-only loss (as TRL's SFTTrainer will).

    ``training_template`` (the preset's ``training.training_chat_template`` for this model) is a marked
    copy in ``hala/training/templates`` that SFT masks with instead; it must exist and carry markers.
    Why QCRI/Fanar-1-9B-Instruct needs one: :mod:`hala.training.data` (evidence: the template of its
    tokenizer_config.json at revision d30938d0efb1fd251727ee96df6987802ff84662 has no ``{% generation %}``
    markers and is none TRL 1.16 matches; fixtures/chat_templates/fanar-1-9b-instruct.json).
    """
    from hala.training.data import assistant_mask_source, unmaskable_fix

    if training_template is not None:
        try:
            source = assistant_mask_source("", training_template)
        except HalaError as error:
            raise CheckFailed(f"SFT base model {model}: {error}", unmaskable_fix(model)) from error
        return f"SFT base model {model}: assistant tokens masked through {source}"
    try:
        template = fetch_template()
    except Exception as error:  # hub errors: missing repo or revision, gated model, no token
        raise CheckFailed(
            f"chat template of SFT base model {model} could not be read: {_first_line(error)}",
            "check the model id and revision in the preset and that HF_TOKEN grants access",
        ) from error
    if not template:
        raise CheckFailed(
            f"SFT base model {model} ships no chat template, so assistant-only loss has nothing to mask",
            "use an instruct/chat revision of the model that ships one",
        )
    source = assistant_mask_source(template)
    if source is None:
        raise CheckFailed(
            f"SFT base model {model}: its chat template has no {{% generation %}} markers and is not one "
            "TRL recognises (TRL matches templates byte for byte against trl/chat_templates/*.jinja), so "
            "SFT with assistant-only loss would stop on the GPU nodes",
            unmaskable_fix(model),
        )
    return f"SFT base model {model}: assistant tokens masked through {source}"


def _first_line(error: Exception, uri: str = "") -> str:
    """The first line of ``error``'s message (at most 300 characters), ``uri``'s password masked."""
    text = _scrubbed(str(error), uri).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def preflight(
    tracking_uri: str,
    required_env: Sequence[str],
    output_dirs: Sequence[str | Path],
    check_registry: bool = True,
    timeout_s: float = 30,
    sft_templates: Mapping[str, Callable[[], str | None]] | None = None,
    sft_training_templates: Mapping[str, str | None] | None = None,
) -> list[str]:
    """Run every check and return what passed; raise one :class:`PreflightError` listing every failure.

    ``sft_templates`` maps each SFT base model to the fetch of its chat template, and
    ``sft_training_templates`` (same keys) to its preset's ``training.training_chat_template``.
    The registry check is skipped when the tracking server itself failed (it would fail the same way).
    """
    trainings = sft_training_templates or {}
    checks: list[Callable[[], str]] = [functools.partial(check_env, required_env)]
    checks += [functools.partial(check_output_dir, path) for path in output_dirs]
    checks += [
        functools.partial(check_sft_chat_template, m, f, trainings.get(m))
        for m, f in (sft_templates or {}).items()
    ]
    passed: list[str] = []
    failures: list[str] = []
    for check in checks:
        _run(check, passed, failures)
    tracking_ok = _run(functools.partial(check_tracking, tracking_uri, timeout_s), passed, failures)
    if check_registry and tracking_ok:
        _run(functools.partial(check_registry_writable, tracking_uri, timeout_s), passed, failures)
    if failures:
        lines = "\n".join(f"  - {failure}" for failure in failures)
        raise PreflightError(f"preflight failed ({len(failures)} problem(s)):\n{lines}")
    return passed


def _run(check: Callable[[], str], passed: list[str], failures: list[str]) -> bool:
    try:
        passed.append(check())
    except CheckFailed as failure:
        failures.append(str(failure))
        return False
    return True
