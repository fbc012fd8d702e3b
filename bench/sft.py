"""Benchmark: SFT training tokens/s of the tiny student on CPU, with packing against without.

    python bench/sft.py                 # 30 steps each, batch 8, max length 512
    python bench/sft.py --steps 10      # quicker

The examples are chat pairs built from the OpenOrca and LaMini fixtures (mixed lengths, as in the
corpus). Both runs use the same function (hala.training.sft.train_sft), model, data, seed and
steps; tokens are TRL's count of trained-on input tokens (padding excluded), over training wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hala.tiny_models import save_tiny_model
from hala.training.sft import SFTJob, SFTResult, train_sft

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"


def fixture_conversations() -> list[list[dict[str, str]]]:
    """User/assistant pairs from the OpenOrca and LaMini fixtures."""
    rows = []
    for source, (q, a) in (("openorca", ("question", "response")), ("lamini", ("instruction", "response"))):
        for line in (FIXTURES / source / "train.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row[q].strip() and row[a].strip():
                rows.append([{"role": "user", "content": row[q]}, {"role": "assistant", "content": row[a]}])
    return rows


def run(
    model: Path, data: Path, work: Path, packing: bool, steps: int, batch: int, max_length: int
) -> SFTResult:
    """One training run of ``steps`` optimizer steps."""
    training = {
        "learning_rate": 1e-3,
        "epochs": 1000,
        "max_steps": steps,
        "effective_batch_size": batch,
        "per_device_batch_size": batch,
        "max_length": max_length,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant_with_warmup",
        "packing": packing,
        "bf16": False,
        "save_steps": 10 * steps,
        "logging_steps": 1,
        "deepspeed": "none",
    }
    job = SFTJob(str(model), [str(data)], str(work / "out"), str(work / "ck"), training, seed=0)
    return train_sft(job)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = save_tiny_model("student", root / "student")
        conversations = fixture_conversations() * 20
        pq.write_table(pa.table({"messages": conversations}), root / "train.parquet")
        results = {
            name: run(
                model,
                root / "train.parquet",
                root / name,
                packing,
                args.steps,
                args.batch_size,
                args.max_length,
            )
            for name, packing in (("packing", True), ("padding", False))
        }
    print(
        f"tiny student, {len(conversations)} examples, {args.steps} steps, batch {args.batch_size}, "
        f"max length {args.max_length}, CPU"
    )
    for name, r in results.items():
        speed = f"{r.train_tokens:8d} tokens  {r.tokens_per_second:9.1f} tokens/s"
        print(f"{name:>8}: {r.wall_seconds:7.2f} s  {speed}")
    ratio = results["packing"].tokens_per_second / results["padding"].tokens_per_second
    print(f"ratio (packing / padding): {ratio:.2f}x")


if __name__ == "__main__":
    main()
