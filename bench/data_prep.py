"""Benchmark: the data stage on generated rows, columnar vs a per-row loop, and streamed at scale.

    python bench/data_prep.py                         # 1M OpenOrca rows vs the per-row loop, then
                                                      # 1M and 4M rows of each schema streamed
    python bench/data_prep.py --rows 200000 --scale 200000,800000   # quicker
    python bench/data_prep.py --skip-scale            # the first part only

Part 1 (issue 2): normalise and shard generated OpenOrca-schema rows held in memory, the library's
columnar path (``hala.prepare.prepare_batches``) against the same work one Python dict at a time:
validate blank fields, drop duplicate ids, build the messages, assign each id to a shard and write
one Parquet file per shard. The variants alternate, ``--repeats`` times each, and the best run of
each is compared: this machine's speed varies from minute to minute, and the best run is the least
disturbed one. Target: >= 200,000 rows/s on 2 cores and >= 5x the per-row baseline.

Part 2 (issue 13): the whole prepare stage (``hala.prepare.prepare_source``: ``datasets`` reads the
files into its cache, then the split is streamed batch by batch into ``--scale-shards`` shards) on
generated Parquet files written once to a temporary folder: OpenOrca rows (short) and Hermes-3
conversations (long: one to four exchanges, a system prompt on some, user turns of 100-800
characters, assistant turns of 200-3,000: 4.8 turns and 3,100 characters a conversation on
average, 9% with a fenced code block, which the code rule quarantines), at each ``--scale`` row
count. Time and peak RSS are given apart for building datasets' cache of the files and for the
stage that streams it. Goal: peak RSS flat across the row counts and under 4 GiB.

Each measured run is its own subprocess, so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

WORDS = [
    "the", "model", "answers", "a", "question", "about", "history",
    "science", "numbers", "cities", "rivers", "code", "music", "art",
]  # fmt: skip


def generate(rows: int, seed: int = 0, start: int = 0) -> pa.Table:
    """Rows in the Open-Orca/OpenOrca schema: id, system_prompt, question, response."""
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS, dtype=object)

    def texts(count: int, words: int) -> pa.Array:
        picks = vocab[rng.integers(0, len(vocab), size=(count // 50 + 1, words))]
        base = [" ".join(row) for row in picks]
        return pa.array([base[i % len(base)] + f" #{start + i}" for i in range(count)], pa.string())

    systems = ["", "You are a helpful assistant.", "Explain step by step."]
    return pa.table(
        {
            "id": pa.array([f"flan.{start + i}" for i in range(rows)], pa.string()),
            "system_prompt": pa.array([systems[i % 3] for i in range(rows)], pa.string()),
            "question": texts(rows, 24),
            "response": texts(rows, 60),
        }
    )


HERMES_TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
CODE = "Here is one way:\n```python\ndef total(xs):\n    return sum(xs)\n```\nIt adds the numbers."


def _turn_pool(rng: np.random.Generator, count: int, low: int, high: int, code_share: float) -> pa.Array:
    """``count`` distinct texts of ``low``-``high`` characters (log-uniform), some with a code block."""
    vocab = np.array([*WORDS, "river", "the", "of", "and", "to", "in", "is"], dtype=object)
    lengths = np.exp(rng.uniform(np.log(low), np.log(high), size=count)).astype(int)
    texts = []
    for i, length in enumerate(lengths.tolist()):
        words = vocab[rng.integers(0, len(vocab), size=length // 5 + 1)]
        text = (f"Item {i}: " + " ".join(words))[:length].rstrip() + "."
        texts.append(f"{text}\n\n{CODE}" if rng.random() < code_share else text)
    return pa.array(texts, pa.string())


@functools.cache
def _pools() -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """System, human and gpt turn texts in one array, with each kind's first index and count."""
    rng = np.random.default_rng(1234)
    pools = [
        _turn_pool(rng, 64, 40, 300, 0.0),
        _turn_pool(rng, 4096, 100, 800, 0.0),
        _turn_pool(rng, 4096, 200, 3000, 0.04),
    ]
    sizes = np.array([len(p) for p in pools])
    return pa.concat_arrays(pools), np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes


def generate_hermes(rows: int, seed: int = 0, start: int = 0) -> pa.Table:
    """Long conversations in the NousResearch/Hermes-3-Dataset schema: ``conversations[{from, value}]``.

    Each row: a system prompt on 40%, then 1-4 exchanges (human 100-800 characters, gpt 200-3,000);
    the first human turn ends with the row number, so every conversation (and its content id) differs.
    """
    rng = np.random.default_rng(seed)
    pool, first, sizes = _pools()
    exchanges = rng.choice([1, 2, 3, 4], size=rows, p=[0.3, 0.35, 0.2, 0.15])
    system = rng.random(rows) < 0.4
    counts = 2 * exchanges + system
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    row_of = np.repeat(np.arange(rows), counts)
    position = np.arange(offsets[-1]) - offsets[:-1][row_of] - system[row_of]  # -1: the system turn
    role = np.where(position < 0, 0, np.where(position % 2 == 0, 1, 2))
    picks = first[role] + (rng.random(len(role)) * sizes[role]).astype(np.int64)
    marks = pc.binary_join_element_wise(" (#", pc.cast(pa.array(row_of + start), pa.string()), ")", "")
    values = pc.binary_join_element_wise(
        pool.take(pa.array(picks)), pc.if_else(pa.array(position == 0), marks, ""), ""
    )
    names = pa.array(["system", "human", "gpt"]).take(pa.array(role))
    turns = pa.StructArray.from_arrays([names, values], fields=list(HERMES_TURN))
    return pa.table({"conversations": pa.ListArray.from_arrays(pa.array(offsets), turns)})


GENERATORS = {"openorca": generate, "hermes3": generate_hermes}


def write_input(
    schema: str, rows: int, folder: Path, part_rows: int = 1_000_000, chunk: int = 50_000
) -> None:
    """Parquet files of generated rows: ``part-XXXXX.parquet`` of ``part_rows`` rows each."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, first in enumerate(range(0, rows, part_rows)):
        last = min(rows, first + part_rows)
        writer: pq.ParquetWriter | None = None
        for start in range(first, last, chunk):
            table = GENERATORS[schema](min(chunk, last - start), seed=start, start=start)
            writer = writer or pq.ParquetWriter(folder / f"part-{part:05d}.parquet", table.schema)
            writer.write_table(table, row_group_size=10_000)
        assert writer is not None
        writer.close()


def columnar(table: pa.Table, out: Path, shards: int) -> int:
    """The library's path: hala.prepare.prepare_batches over the table's batches."""
    from hala.prepare import Batch, prepare_batches
    from hala.sources import SOURCES
    from hala.sources.reader import BATCH_ROWS

    batches = (Batch(s, table.slice(s, BATCH_ROWS)) for s in range(0, table.num_rows, BATCH_ROWS))
    return prepare_batches(SOURCES["openorca"], batches, out, shards).kept


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


def _peak_mib() -> float:
    """This process's peak RSS since it started or since :func:`_reset_peak`."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start measuring the peak RSS afresh (Linux: ``5`` to ``/proc/self/clear_refs``)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def run_variant(name: str, rows: int, shards: int) -> dict[str, float]:
    """Generate, then time one variant in this process; report rows/s and peak RSS."""
    table = generate(rows)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        kept = {"columnar": columnar, "per_row": per_row}[name](table, Path(tmp), shards)
        seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "kept": kept,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mib": _peak_mib(),
    }


def run_stage(schema: str, folder: Path, shards: int) -> dict[str, float]:
    """The prepare stage on one folder of generated files (in this process): cache build, stage time."""
    from hala.prepare import prepare_source
    from hala.sources import SOURCES
    from hala.sources.reader import SourceReader

    spec = SOURCES[schema]
    start = time.perf_counter()
    SourceReader(spec, str(folder))  # datasets builds its cache of the split (once per folder)
    cached, cache_peak = time.perf_counter(), _peak_mib()
    _reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        counts = prepare_source(spec, str(folder), Path(tmp), shards)
        seconds = time.perf_counter() - cached
    return {
        "rows": counts.read,
        "kept": counts.kept,
        "cache_seconds": cached - start,
        "cache_peak_rss_mib": cache_peak,
        "seconds": seconds,
        "rows_per_s": counts.read / seconds,
        "peak_rss_mib": _peak_mib(),
    }


def _child(*args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    cmd = [sys.executable, __file__, *args]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(rows: int, shards: int, repeats: int) -> None:
    """Part 1: columnar vs the per-row loop on rows held in memory."""
    runs: dict[str, list[dict[str, float]]] = {"columnar": [], "per_row": []}
    for _ in range(repeats):
        for name, found in runs.items():
            found.append(_child("--variant", name, "--rows", str(rows), "--shards", str(shards)))
    results = {name: min(found, key=lambda r: r["seconds"]) for name, found in runs.items()}
    col, base = results["columnar"], results["per_row"]
    print(f"rows: {rows:,}  shards: {shards}  best of {repeats} (peak RSS includes the input)")
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


def scale(counts: list[int], shards: int, root: Path) -> None:
    """Part 2: the prepare stage streaming generated files of each schema at each row count.

    The input is written once per schema, in files of ``min(counts)`` rows: a row count's folder
    holds hard links to the first files (every count a multiple of the smallest).
    """
    if any(n % min(counts) for n in counts):
        raise SystemExit(f"--scale: every row count must be a multiple of the smallest ({counts})")
    print(
        f"\nprepare stage, streamed ({shards} shards; input: generated Parquet files): datasets builds its "
        "cache of the files (time, peak RSS), then the stage streams the split (time, peak RSS)"
    )
    peaks: list[float] = []
    for schema in GENERATORS:
        source = root / f"{schema}-all"
        write_input(schema, max(counts), source, part_rows=min(counts))
        size = sum(p.stat().st_size for p in source.iterdir())
        print(f"{schema}: {max(counts):,} rows written, {size / 2**20:,.0f} MiB of Parquet")
        for rows in counts:
            folder = root / f"{schema}-{rows}"
            folder.mkdir()
            parts = sorted(source.iterdir())[: rows // min(counts)]
            for part in parts:  # hard links: no copy
                os.link(part, folder / part.name)
            env = {**os.environ, "HF_DATASETS_CACHE": str(root / "cache")}
            r = _child("--stage", schema, "--input", str(folder), "--shards", str(shards), env=env)
            shutil.rmtree(root / "cache", ignore_errors=True)
            shutil.rmtree(folder)
            peaks += [r["peak_rss_mib"], r["cache_peak_rss_mib"]]
            print(
                f"  {schema:>8} {r['rows']:>10,} rows: cache {r['cache_seconds']:6.1f} s "
                f"(peak RSS {r['cache_peak_rss_mib']:,.0f} MiB), stage {r['seconds']:6.1f} s "
                f"{r['rows_per_s']:>9,.0f} rows/s  peak RSS {r['peak_rss_mib']:,.0f} MiB  kept {r['kept']:,}"
            )
        shutil.rmtree(source)
    ok = max(peaks) < 4096
    print(
        f"peak RSS at most {max(peaks):,.0f} MiB  goal: flat across row counts, under 4 GiB: "
        + ("met" if ok else "MISSED")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant; the best is compared")
    parser.add_argument("--scale", default="1000000,4000000", help="row counts of part 2, comma-separated")
    parser.add_argument("--scale-shards", type=int, default=64, help="shards in part 2 (paper: 64)")
    parser.add_argument("--skip-compare", action="store_true", help="part 2 only")
    parser.add_argument("--skip-scale", action="store_true", help="part 1 only")
    parser.add_argument("--tmp", help="where part 2 writes its input and cache (default: the system's)")
    parser.add_argument("--variant", choices=["columnar", "per_row"], help=argparse.SUPPRESS)
    parser.add_argument("--stage", choices=list(GENERATORS), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.rows, args.shards)))
        return
    if args.stage:
        print(json.dumps(run_stage(args.stage, Path(args.input), args.shards)))
        return
    if not args.skip_compare:
        compare(args.rows, args.shards, args.repeats)
    if not args.skip_scale:
        with tempfile.TemporaryDirectory(dir=args.tmp, prefix="hala-bench-") as tmp:
            scale([int(n) for n in args.scale.split(",")], args.scale_shards, Path(tmp))


if __name__ == "__main__":
    main()
