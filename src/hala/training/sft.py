"""One SFT function (TRL) for the translator and every student size, on CPU or on 8 GPUs with ZeRO.

* Loss only on assistant tokens, through TRL's own template handling: a template with
  ``{% generation %}`` markers is used as it is, a template TRL recognises (LFM2's, byte for byte) is
  swapped for TRL's marked training copy (``lfm2_training.jinja``), a preset's
  ``training.training_chat_template`` (a marked copy in ``hala/training/templates``: the 9B's Fanar needs
  one) replaces the model's template while training, and any other template stops the run before
  training with an error naming the model (:func:`hala.training.data.training_chat_template`).
  The saved model keeps its own template.
* Packing: best-fit decreasing, padding-free (TRL passes position ids and sequence boundaries, so
  attention and LFM2's short convolutions stay inside each example).
* Resume: checkpoints every ``save_steps`` into ``checkpoint_dir`` (on the cluster, the work volume);
  a restarted task continues from the newest one, optimizer, scheduler and RNG state included.
* Multi-GPU: the same function runs in every rank under ``torchrun`` (see :mod:`hala.training.launch`);
  only rank 0 writes to MLflow.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hala.config import TrainingConfig
from hala.errors import HalaError
from hala.training.data import (
    SFTDataCounts,
    check_examples,
    read_messages,
    to_table,
    training_chat_template,
)

DS_CONFIGS = Path(__file__).parent / "ds_configs"


@dataclass(frozen=True)
class SFTJob:
    """Everything one SFT run needs (serialisable: the launcher hands it to every rank as JSON)."""

    model_dir: str
    train_files: list[str]
    output_dir: str
    checkpoint_dir: str
    training: dict[str, Any]
    seed: int
    eval_files: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None

    @property
    def config(self) -> TrainingConfig:
        """The typed hyperparameters."""
        return TrainingConfig.model_validate(self.training)

    def to_json(self) -> str:
        """The job as JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SFTJob:
        """A job from :meth:`to_json`."""
        return cls(**json.loads(text))


@dataclass
class SFTResult:
    """What a finished run reports."""

    global_step: int
    train_loss: float
    train_tokens: int
    wall_seconds: float
    tokens_per_second: float
    resumed_from: str | None
    data: SFTDataCounts
    eval_loss: float | None = None


def world_size() -> int:
    """Ranks in this run (``WORLD_SIZE`` from torchrun; 1 in one process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def gradient_accumulation(cfg: TrainingConfig, ranks: int) -> int:
    """Accumulation steps that make ``effective_batch_size`` from the per-device batch and the ranks."""
    per_step = cfg.per_device_batch_size * ranks
    if cfg.effective_batch_size % per_step:
        raise HalaError(
            f"training.effective_batch_size {cfg.effective_batch_size} is not a multiple of "
            f"per_device_batch_size {cfg.per_device_batch_size} x {ranks} rank(s); change one of them"
        )
    return cfg.effective_batch_size // per_step


def deepspeed_config(stage: str) -> Path | None:
    """The repository's ZeRO config for ``none``/``zero2``/``zero3``."""
    return None if stage == "none" else DS_CONFIGS / f"{stage}.json"


def last_checkpoint(checkpoint_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` folder with a saved trainer state, or None."""
    found = [p for p in Path(checkpoint_dir).glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    if not found:
        return None
    return str(max(found, key=lambda p: _step(p.name)))


def sft_config(job: SFTJob, ranks: int) -> Any:
    """TRL ``SFTConfig`` for the job (loss on assistant tokens, packing, checkpoints, ZeRO)."""
    import torch
    from trl import SFTConfig

    cfg = job.config
    ds = deepspeed_config(cfg.deepspeed)
    return SFTConfig(
        output_dir=job.checkpoint_dir,
        seed=job.seed,
        data_seed=job.seed,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=gradient_accumulation(cfg, ranks),
        max_length=cfg.max_length,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a fraction of all steps
        lr_scheduler_type=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay,
        packing=cfg.packing,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=cfg.bf16,
        assistant_only_loss=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        logging_steps=cfg.logging_steps,
        deepspeed=str(ds) if ds else None,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        disable_tqdm=True,
        dataset_num_proc=None,
    )


def _dataset(files: list[str], tokenizer: Any, max_length: int) -> tuple[Any, SFTDataCounts]:
    from datasets import Dataset

    kept, counts = check_examples(read_messages([Path(f) for f in files]), tokenizer, max_length)
    if not kept:
        raise HalaError(f"no usable training examples in {files}: rejected {counts.rejected}")
    return Dataset(to_table(kept)), counts


def train_sft(job: SFTJob) -> SFTResult:
    """Fine-tune ``job.model_dir`` on ``job.train_files``; the model lands in ``job.output_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from hala.training.mlflow_callback import MlflowCallback

    cfg = job.config
    ranks = world_size()
    tokenizer = AutoTokenizer.from_pretrained(job.model_dir)
    own_template = tokenizer.chat_template
    # Fails here, not inside SFTTrainer; a preset's training_chat_template replaces the model's own
    # template while training (TRL uses its {% generation %} markers as they are).
    masked = training_chat_template(tokenizer, job.model_dir, cfg.training_chat_template)
    if cfg.training_chat_template is not None:
        tokenizer.chat_template = masked
    train_set, counts = _dataset(job.train_files, tokenizer, cfg.max_length)
    eval_set = _dataset(job.eval_files, tokenizer, cfg.max_length)[0] if job.eval_files else None
    args = sft_config(job, ranks)
    model = AutoModelForCausalLM.from_pretrained(
        job.model_dir, dtype="auto", attn_implementation=cfg.attn_implementation
    )
    callbacks: list[Any] = [MlflowCallback(job.mlflow_run_id, job.tracking_uri)] if job.mlflow_run_id else []
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    resume = last_checkpoint(job.checkpoint_dir)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - started
    eval_loss = trainer.evaluate()["eval_loss"] if eval_set is not None else None
    tokenizer.chat_template = own_template  # the saved model keeps its own template
    trainer.save_model(job.output_dir)  # every rank joins (ZeRO-3 gathers the weights); rank 0 writes
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(job.output_dir)
    # Tokens trained in this session (a resumed run's history starts with the earlier session's).
    history = trainer.state.log_history
    before = _logged_tokens([h for h in history if resume and h.get("step", 0) <= _step(resume)])
    tokens = int(_logged_tokens(history) - before)
    return SFTResult(
        global_step=output.global_step,
        train_loss=float(output.training_loss),
        train_tokens=tokens,
        wall_seconds=wall,
        tokens_per_second=tokens / wall if wall else 0.0,
        resumed_from=resume,
        data=counts,
        eval_loss=float(eval_loss) if eval_loss is not None else None,
    )


def _step(checkpoint: str) -> int:
    return int(checkpoint.rsplit("-", 1)[1])


def _logged_tokens(history: list[dict[str, Any]]) -> float:
    """TRL's running ``num_tokens`` (training tokens, padding excluded) from the log history."""
    return max((float(h["num_tokens"]) for h in history if "num_tokens" in h), default=0.0)
