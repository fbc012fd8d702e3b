"""The DeepSpeed path on CPU: ZeRO-3 through torchrun, DeepSpeed's CPU accelerator, MLflow logging."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from hala.training.launch import run_job
from hala.training.sft import SFTJob


@pytest.mark.slow
def test_zero3_steps_on_cpu(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    run = MlflowClient().create_run(MlflowClient().create_experiment("zero3"))
    rows = [
        [{"role": "user", "content": f"سؤال رقم {i}"}, {"role": "assistant", "content": f"answer {i}"}]
        for i in range(32)
    ]
    pq.write_table(pa.table({"messages": rows}), tmp_path / "train.parquet")
    job = SFTJob(
        model_dir=str(tiny_models["student"]),
        train_files=[str(tmp_path / "train.parquet")],
        output_dir=str(tmp_path / "out"),
        checkpoint_dir=str(tmp_path / "ck"),
        training={
            "learning_rate": 1e-3,
            "epochs": 1,
            "max_steps": 3,
            "effective_batch_size": 4,
            "per_device_batch_size": 4,
            "max_length": 64,
            "warmup_ratio": 0.0,
            "lr_scheduler": "linear",
            "packing": False,
            "bf16": False,
            "save_steps": 100,
            "logging_steps": 1,
            "deepspeed": "zero3",
        },
        seed=0,
        mlflow_run_id=run.info.run_id,
        tracking_uri=uri,
    )
    result = run_job(job, tmp_path / "job.json")  # torchrun, one rank, DS_ACCELERATOR=cpu
    assert result.global_step == 3 and result.train_tokens > 0

    # ZeRO-3 shards the weights; the saved model is whole again and loads.
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert sum(p.numel() for p in model.parameters()) > 0

    client = MlflowClient(uri)
    losses = client.get_metric_history(run.info.run_id, "train.loss")
    assert [m.step for m in losses] == [1, 2, 3]
    resolved = json.loads(
        Path(client.download_artifacts(run.info.run_id, "deepspeed/resolved_config.json")).read_text()
    )
    assert resolved["zero_optimization"]["stage"] == 3
    assert resolved["train_micro_batch_size_per_gpu"] == 4  # "auto" resolved from the preset
    assert client.get_run(run.info.run_id).data.tags["hala.deepspeed.zero_stage"] == "3"
    assert os.environ.get("DS_ACCELERATOR") is None  # set only for the ranks
