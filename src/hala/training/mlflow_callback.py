"""Trainer callback: the loss curve, learning rate and tokens to an existing MLflow run (rank 0 only).

Logs to the stage's run by id through the client, so it never opens runs of its own (unlike
transformers' built-in MLflow integration, which is switched off with ``report_to=[]``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback

LOGGED = {
    "loss": "train.loss",
    "learning_rate": "train.learning_rate",
    "grad_norm": "train.grad_norm",
    "num_tokens": "train.tokens",
    "mean_token_accuracy": "train.token_accuracy",
    "eval_loss": "eval.loss",
}


class MlflowCallback(TrainerCallback):  # type: ignore[misc]
    """Send each logging step's metrics, and the resolved DeepSpeed config, to ``run_id``."""

    def __init__(self, run_id: str | None, tracking_uri: str | None = None) -> None:
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri) if run_id else None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Record the DeepSpeed config as resolved by the trainer (``auto`` values filled in)."""
        if not (self.client and self.run_id and state.is_world_process_zero):
            return
        ds = getattr(args, "hf_deepspeed_config", None)
        if ds is not None:
            self.client.log_dict(self.run_id, ds.config, "deepspeed/resolved_config.json")
            self.client.set_tag(
                self.run_id, "hala.deepspeed.zero_stage", str(ds.config["zero_optimization"]["stage"])
            )
        self.client.log_text(self.run_id, json.dumps(args.to_dict(), indent=1, default=str), "sft/args.json")

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """Metrics of one logging step, at the trainer's global step."""
        if not (self.client and self.run_id and state.is_world_process_zero and logs):
            return
        now = int(time.time() * 1000)
        metrics = [
            Metric(LOGGED[k], float(v), now, state.global_step)
            for k, v in logs.items()
            if k in LOGGED and isinstance(v, int | float)
        ]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
