"""Stage ``sft``: fine-tune the translator (report section 2.4) or one student size (section 2.6).

One TRL function for every role (:mod:`hala.training.sft`): in this process on CPU, ``torchrun``
over the pod's GPUs with DeepSpeed ZeRO, or a Kubeflow Trainer ``TrainJob`` when ``nodes > 1``.
Checkpoints go to a work folder keyed by the task's settings and inputs, so a retried task resumes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from hala.config import ClusterConfig, ModelRef, Preset, TrainingConfig
from hala.stages.settings import StageSettings
from hala.training.launch import TRANSLATOR, sft_work_dir

LINEAGE_FILE = "hala-data-lineage.json"  # in the model folder: what registration tags the version with
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class SFTSettings(StageSettings):
    """One training: its role, base model, hyperparameters, seed and (multi-node) cluster settings."""

    role: str
    base: ModelRef
    training: TrainingConfig
    seed: int
    work_root: str
    image: str  # the train image, for a multi-node TrainJob's pods
    cluster: ClusterConfig | None  # placement of a multi-node TrainJob (None on one node)


def settings(preset: Preset, *, role: str, image: str = "") -> SFTSettings:
    """The ``sft`` settings of the translator (``role="translator"``) or one student size."""
    if role == TRANSLATOR:
        base, training = preset.translator.base, preset.translator.training
    else:
        base, training = preset.students[role].base, preset.students[role].training
    return SFTSettings(
        role=role,
        base=base,
        training=training,
        seed=preset.seed,
        work_root=preset.cluster.work_root,
        image=image if training.nodes > 1 else "",
        cluster=preset.cluster if training.nodes > 1 else None,
    )


@dataclass(frozen=True)
class DataLineage:
    """The training data behind a model: its files' fingerprint and the examples read and kept."""

    data_fingerprint: str
    train_files: list[str]
    examples_read: int
    examples_kept: int


@dataclass(frozen=True)
class SFTOutcome:
    """What a training did."""

    role: str
    global_step: int
    train_loss: float
    resumed_from: str
    lineage: DataLineage


def data_fingerprint(files: list[Path]) -> str:
    """SHA-256 over the training files' names and bytes (the data lineage of a model)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def _onto_volume(work: Path, base_dir: str, files: list[Path]) -> tuple[str, list[Path]]:
    """Copy the base model and the data onto the work volume, where a TrainJob's pods can read them."""
    staged = work / "inputs"
    shutil.copytree(base_dir, staged / "base", dirs_exist_ok=True)
    copies = []
    for i, path in enumerate(files):
        copies.append(staged / "data" / f"{i:04d}-{path.name}")
        copies[-1].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copies[-1])
    return str(staged / "base"), copies


def _data_files(role: str, data_dir: str) -> tuple[list[Path], list[Path]]:
    from hala.training.data import parquet_files

    if role == TRANSLATOR:
        return parquet_files([data_dir], ["train.parquet"]), parquet_files([data_dir], ["heldout.parquet"])
    return parquet_files([data_dir]), []


def run(settings: SFTSettings, base_dir: str, data_dir: str, out_dir: str, namespace: str = "") -> SFTOutcome:
    """Fine-tune ``base_dir`` on ``data_dir`` into ``out_dir``; the outcome and data lineage."""
    import mlflow
    import pyarrow.parquet as pq

    from hala import tracking
    from hala.stages.context import open_stage, work_key, work_root
    from hala.training.launch import run_job, run_trainjob, trainjob_manifest, trainjob_name
    from hala.training.sft import SFTJob

    cfg, role = settings.training, settings.role
    train, evals = _data_files(role, data_dir)
    key = work_key(settings.to_json(), [base_dir, data_dir])
    work = sft_work_dir(work_root(settings.work_root), role, key)
    fingerprint, names = data_fingerprint(train), [f.name for f in train]
    if settings.cluster is not None:
        base_dir, staged = _onto_volume(work, base_dir, [*train, *evals])
        train, evals = staged[: len(train)], staged[len(train) :]
    with open_stage(f"sft-{role}", inputs=[base_dir, data_dir], outputs=[out_dir]) as stage:
        job = SFTJob(
            model_dir=base_dir,
            train_files=[str(f) for f in train],
            eval_files=[str(f) for f in evals if pq.read_metadata(f).num_rows],
            output_dir=str(work / "model") if settings.cluster else out_dir,
            checkpoint_dir=str(work / "checkpoints"),
            training=cfg.model_dump(mode="json"),
            seed=settings.seed,
            mlflow_run_id=stage.run_id,
            tracking_uri=tracking.tracking_uri(),
        )
        mlflow.log_params({f"sft.{k}": v for k, v in cfg.model_dump(mode="json").items()})
        base = settings.base
        mlflow.log_params({"sft.role": role, "sft.base_model": base.id, "sft.base_revision": base.revision})
        if settings.cluster is not None:
            job_file = work / "job.json"
            job_file.parent.mkdir(parents=True, exist_ok=True)
            job_file.write_text(job.to_json())
            namespace = namespace or Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip()
            manifest = trainjob_manifest(
                trainjob_name(role, key),
                namespace,
                settings.image,
                str(job_file),
                cfg.nodes,
                settings.cluster,
            )
            mlflow.log_dict(manifest, "sft/trainjob.json")
            run_trainjob(manifest)
            shutil.copytree(work / "model", out_dir, dirs_exist_ok=True)
            result = json.loads((work / "job.result.json").read_text())
        else:
            result = asdict(run_job(job, work / "job.json"))
        data = result.pop("data")
        lineage = DataLineage(fingerprint, names, data["read"], data["kept"])
        stage.log_metrics(
            {
                "sft.global_step": result["global_step"],
                "sft.train_loss": result["train_loss"],
                "sft.train_tokens": result["train_tokens"],
                "sft.wall_seconds": result["wall_seconds"],
                "sft.tokens_per_second": result["tokens_per_second"],
                "sft.examples_read": data["read"],
                "sft.examples_kept": data["kept"],
                "sft.examples_truncated": data["truncated"],
                **{f"sft.rejected.{k}": v for k, v in data["rejected"].items()},
                **({"sft.eval_loss": result["eval_loss"]} if result.get("eval_loss") is not None else {}),
            }
        )
        mlflow.set_tag("hala.sft.resumed_from", result["resumed_from"] or "")
        mlflow.log_dict(asdict(lineage), "sft/lineage.json")
        (Path(out_dir) / LINEAGE_FILE).write_text(json.dumps(asdict(lineage), sort_keys=True) + "\n")
    return SFTOutcome(
        role, result["global_step"], result["train_loss"], result["resumed_from"] or "", lineage
    )


def read_lineage(model_dir: str | Path) -> DataLineage | None:
    """The data lineage a training wrote into a model folder (None for a model no SFT produced)."""
    path = Path(model_dir) / LINEAGE_FILE
    return DataLineage(**json.loads(path.read_text())) if path.is_file() else None
