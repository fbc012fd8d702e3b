"""Stage entry points of training: corpus assembly, SFT, merge and registration (what components call)."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq

from hala import tracking
from hala.config import ModelRef, Preset, TrainingConfig
from hala.errors import HalaError
from hala.training.data import parquet_files
from hala.translate.stages import read_outputs

TRANSLATOR = "translator"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


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


def collect_corpus(
    source: str, shard_dirs: list[str], previous_dir: str | None, out_dir: str
) -> dict[str, int]:
    """Add one source's translated shards to the Arabic corpus (``<source>.parquet`` per source).

    ``sources.json`` holds the rows per source so far (the last corpus task's file covers them all).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    if previous_dir:
        for path in Path(previous_dir).glob("*.parquet"):
            shutil.copyfile(path, out / path.name)
        counts = json.loads((Path(previous_dir) / "sources.json").read_text())
    table: pa.Table = read_outputs(shard_dirs)
    pq.write_table(table, out / f"{source}.parquet")
    counts[source] = table.num_rows
    (out / "sources.json").write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    return counts


def _training(preset: Preset, role: str) -> tuple[ModelRef, TrainingConfig]:
    if role == TRANSLATOR:
        return preset.translator.base, preset.translator.training
    if role not in preset.students:
        raise HalaError(f"no student size {role!r} in preset {preset.name}; sizes: {sorted(preset.students)}")
    student = preset.students[role]
    return student.base, student.training


def sft(
    preset_json: str,
    kfp_run_id: str,
    work_root: str,
    role: str,
    base_dir: str,
    data_dir: str,
    out_dir: str,
    image: str = "",
    namespace: str = "",
) -> dict[str, Any]:
    """Stages 4 and 6: fine-tune the translator (role ``translator``) or a student size.

    Checkpoints go to ``<work_root>/<kfp run>/sft-<role>``, so a retried task resumes. Returns the
    model's lineage metadata (base, revision, data fingerprint, counts).
    """
    from hala.training.launch import run_job, run_trainjob, trainjob_manifest, trainjob_name
    from hala.training.sft import SFTJob

    preset = Preset.model_validate_json(preset_json)
    base, cfg = _training(preset, role)
    if role == TRANSLATOR:
        train, evals = (
            parquet_files([data_dir], ["train.parquet"]),
            parquet_files([data_dir], ["heldout.parquet"]),
        )
    else:
        train, evals = parquet_files([data_dir]), []
    work = Path(work_root) / kfp_run_id / f"sft-{role}"
    multi_node = cfg.nodes > 1
    parent_run_id = tracking.parent_run_of(preset_json, kfp_run_id)
    fingerprint, names = data_fingerprint(train), [f.name for f in train]
    if multi_node:
        base_dir, staged = _onto_volume(work, base_dir, [*train, *evals])
        train, evals = staged[: len(train)], staged[len(train) :]
    with tracking.stage_run(parent_run_id, f"sft-{role}") as run:
        job = SFTJob(
            model_dir=base_dir,
            train_files=[str(f) for f in train],
            eval_files=[str(f) for f in evals if pq.read_metadata(f).num_rows] if evals else [],
            output_dir=str(work / "model") if multi_node else out_dir,
            checkpoint_dir=str(work / "checkpoints"),
            training=cfg.model_dump(mode="json"),
            seed=preset.seed,
            mlflow_run_id=run.info.run_id,
            tracking_uri=tracking.tracking_uri(),
        )
        mlflow.log_params({f"sft.{k}": v for k, v in cfg.model_dump(mode="json").items()})
        mlflow.log_params({"sft.role": role, "sft.base_model": base.id, "sft.base_revision": base.revision})
        if multi_node:
            job_file = work / "job.json"
            job_file.parent.mkdir(parents=True, exist_ok=True)
            job_file.write_text(job.to_json())
            namespace = namespace or Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip()
            manifest = trainjob_manifest(
                trainjob_name(role, kfp_run_id),
                namespace,
                image,
                str(job_file),
                cfg.nodes,
                preset.cluster,
            )
            mlflow.log_dict(manifest, "sft/trainjob.json")
            run_trainjob(manifest)
            shutil.copytree(work / "model", out_dir, dirs_exist_ok=True)
            result = json.loads((work / "job.result.json").read_text())
        else:
            result = asdict(run_job(job, work / "job.json"))
        data = result.pop("data")
        lineage = {
            "data_fingerprint": fingerprint,
            "train_files": names,
            "examples_read": data["read"],
            "examples_kept": data["kept"],
        }
        mlflow.log_metrics(
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
        mlflow.log_dict(lineage, "sft/lineage.json")
    return {
        "role": role,
        "base_model": base.id,
        "base_revision": base.revision,
        "lineage": json.dumps(lineage, sort_keys=True),
        "global_step": result["global_step"],
        "train_loss": result["train_loss"],
        "resumed_from": result["resumed_from"] or "",
    }


def merge(
    preset_json: str, kfp_run_id: str, role: str, finetuned_dir: str, base_dir: str, out_dir: str
) -> None:
    """Stage 7: slerp the fine-tune with its base at the preset's ``merge.t``; the config goes to MLflow."""
    from hala.merge import slerp_merge

    preset = Preset.model_validate_json(preset_json)
    parent_run_id = tracking.parent_run_of(preset_json, kfp_run_id)
    with tracking.stage_run(parent_run_id, f"merge-{role}"):
        config = slerp_merge(Path(finetuned_dir), Path(base_dir), Path(out_dir), preset.merge.t)
        mlflow.log_params(
            {"merge.method": config["merge_method"], "merge.t": preset.merge.t, "merge.role": role}
        )
        mlflow.log_dict(config, "merge/mergekit.yaml")


def register(
    preset_json: str, kfp_run_id: str, role: str, model_dir: str, metadata: dict[str, Any]
) -> dict[str, str]:
    """Register a HALA model (a merged student, or the translator) as a new version, alias ``candidate``."""
    from hala.registration import register_model

    preset = Preset.model_validate_json(preset_json)
    name = preset.translator.registered_name if role == TRANSLATOR else preset.students[role].registered_name
    parent_run_id = tracking.parent_run_of(preset_json, kfp_run_id)
    version = register_model(
        Path(model_dir),
        name,
        parent_run_id,
        kfp_run_id=kfp_run_id,
        preset=preset,
        role="translator" if role == TRANSLATOR else "student",
        base_model=str(metadata.get("base_model", "")),
        base_revision=str(metadata.get("base_revision", "")),
        lineage=str(metadata.get("lineage", "{}")),
    )
    return {"name": name, "version": version}
