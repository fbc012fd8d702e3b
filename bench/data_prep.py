"""Benchmark: normalise and shard generated OpenOrca-schema rows, columnar vs a per-row Python loop.

    python bench/data_prep.py                # 1,000,000 rows, 8 shards
    python bench/data_prep.py --rows 200000  # quicker

Each run of a variant is its own subprocess, so its peak memory (max RSS) is its own. The variants
alternate, ``--repeats`` times each, and the best run of each is compared: this machine's speed
varies from minute to minute, and the best run is the least disturbed one. Both variants do
the same work: validate blank fields, drop duplicate ids, build the messages, assign each id to a
shard by xxh3-64 and write one Parquet file per shard. Target (issue 2): >= 200,000 rows/s on
2 cores and >= 5x the per-row baseline.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

WORDS = [
    "the", "model", "answers", "a", "question", "about", "history",
    "science", "numbers", "cities", "rivers", "code", "music", "art",
]  # fmt: skip


def generate(rows: int, seed: int = 0) -> pa.Table:
    """Rows in the Open-Orca/OpenOrca schema: id, system_prompt, question, response."""
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS, dtype=object)

    def texts(count: int, words: int) -> pa.Array:
        picks = vocab[rng.integers(0, len(vocab), size=(count // 50 + 1, words))]
        base = [" ".join(row) for row in picks]
        return pa.array([base[i % len(base)] + f" #{i}" for i in range(count)], pa.string())

    systems = ["", "You are a helpful assistant.", "Explain step by step."]
    return pa.table(
        {
            "id": pa.array([f"flan.{i}" for i in range(rows)], pa.string()),
            "system_prompt": pa.array([systems[i % 3] for i in range(rows)], pa.string()),
            "question": texts(rows, 24),
            "response": texts(rows, 60),
        }
    )


def columnar(table: pa.Table, out: Path, shards: int) -> int:
    """The library's path: hala.prepare.normalise_table + write_shards."""
    from hala.prepare import normalise_table, write_shards
    from hala.sources import SOURCES

    prepared = normalise_table(SOURCES["openorca"], table)
    write_shards(prepared.kept, shards, out, prepared.kept_hashes)
    return prepared.kept.num_rows


def per_row(table: pa.Table, out: Path, shards: int) -> int:
    """The baseline: the same work one Python dict at a time."""
    seen: set[str] = set()
    buckets: list[list[dict[str, object]]] = [[] for _ in range(shards)]
    for row in table.to_pylist():
        if not (row["id"] or "").strip() or row["id"] in seen:
            continue
        seen.add(row["id"])
        if not (row["question"] or "").strip() or not (row["response"] or "").strip():
            continue
        messages = []
        if (row["system_prompt"] or "").strip():
            messages.append({"role": "system", "content": row["system_prompt"]})
        messages.append({"role": "user", "content": row["question"]})
        messages.append({"role": "assistant", "content": row["response"]})
        record_id = f"openorca:{row['id']}"
        record = {"id": record_id, "source": "openorca", "messages": messages, "meta": None}
        buckets[xxhash.xxh3_64_intdigest(record_id) % shards].append(record)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    for index, bucket in enumerate(buckets):
        pq.write_table(pa.Table.from_pylist(bucket), out / "shards" / f"shard-{index:05d}.parquet")
    return sum(len(b) for b in buckets)


def run_variant(name: str, rows: int, shards: int) -> dict[str, float]:
    """Generate, then time one variant in this process; report rows/s and peak RSS."""
    table = generate(rows)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        kept = {"columnar": columnar, "per_row": per_row}[name](table, Path(tmp), shards)
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": rows,
        "kept": kept,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mib": peak_mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant; the best is compared")
    parser.add_argument("--variant", choices=["columnar", "per_row"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.rows, args.shards)))
        return
    runs: dict[str, list[dict[str, float]]] = {"columnar": [], "per_row": []}
    for _ in range(args.repeats):
        for name, found in runs.items():
            cmd = [
                sys.executable,
                __file__,
                "--variant",
                name,
                "--rows",
                str(args.rows),
                "--shards",
                str(args.shards),
            ]
            found.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    results = {name: min(found, key=lambda r: r["seconds"]) for name, found in runs.items()}
    col, base = results["columnar"], results["per_row"]
    print(f"rows: {args.rows:,}  shards: {args.shards}  best of {args.repeats} (peak RSS includes the input)")
    for name, r in results.items():
        every = ", ".join(f"{x['seconds']:.2f}" for x in runs[name])
        print(
            f"{name:>9}: {r['seconds']:7.2f} s  {r['rows_per_s']:>11,.0f} rows/s  "
            f"peak RSS {r['peak_rss_mib']:,.0f} MiB  kept {r['kept']:,}  (every run: {every} s)"
        )
    speedup = col["rows_per_s"] / base["rows_per_s"]
    print(f"speed-up: {speedup:.1f}x  target: >= 200,000 rows/s and >= 5x")
    ok = col["rows_per_s"] >= 200_000 and speedup >= 5
    print("target met" if ok else "TARGET MISSED")


if __name__ == "__main__":
    main()
