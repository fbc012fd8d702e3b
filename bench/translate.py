"""Benchmark: the transformers engine on the tiny teacher, batched and length-sorted vs one text at a time.

    python bench/translate.py                 # 300 texts, batch 32, 32 new tokens each
    python bench/translate.py --texts 100     # quicker
    .venv-vllm/bin/python bench/translate.py --vllm   # vLLM (CPU build) against transformers batched

``--vllm`` (in .venv-vllm, ``make bench-vllm``) times vLLM's offline batch on the same model, prompts and
greedy settings in place of the one-at-a-time run, after the transformers run: vLLM runs in this
process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) on every core (``VLLM_CPU_OMP_THREADS_BIND``), as torch
does for transformers, and both load the model in fp32.

The texts are prose segments of the fixture datasets (the chunker's output, so lengths are mixed as
in a real shard). Both runs use the same prompts, greedy decoding and the same model, in one
process. Target (issue 3): the batched engine at least 5x the texts/s of one text at a time on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from hala.tiny_models import save_tiny_model
from hala.translate.chunking import mask_spans, split_for_translation
from hala.translate.engines import Engine, GenerationSettings, TransformersEngine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
PROMPT = "Translate from English to Arabic: {x}"


def fixture_texts(count: int, engine: TransformersEngine, max_tokens: int) -> list[str]:
    """Prose segments of the OpenOrca, LaMini and Tulu-3 fixtures, cycled up to ``count``."""
    segments: list[str] = []
    for source, fields in (("openorca", ("question", "response")), ("lamini", ("instruction", "response"))):
        for line in (FIXTURES / source / "train.jsonl").read_text().splitlines():
            row = json.loads(line)
            for field in fields:
                for segment in split_for_translation(row[field], max_tokens, engine.count_tokens):
                    if segment.translate:
                        segments.append(mask_spans(segment.text)[0])
    return [segments[i % len(segments)] for i in range(count)]


def timed(engine: Engine, texts: list[str], settings: GenerationSettings) -> dict[str, float]:
    """Texts/s and generated tokens/s of one engine over ``texts``."""
    conversations = [[{"role": "user", "content": PROMPT.format(x=t)}] for t in texts]
    start = time.perf_counter()
    generations = engine.chat(conversations, settings)
    seconds = time.perf_counter() - start
    tokens = sum(g.completion_tokens for g in generations)
    return {"seconds": seconds, "texts_per_s": len(texts) / seconds, "tokens_per_s": tokens / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-input-tokens", type=int, default=128)
    parser.add_argument("--vllm", action="store_true", help="vLLM (CPU) against transformers batched")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = save_tiny_model("teacher", Path(tmp) / "teacher")
        batched = TransformersEngine(model, batch_size=args.batch_size)
        texts = fixture_texts(args.texts, batched, args.max_input_tokens)
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
        timed(batched, texts[:8], settings)  # warm-up: first-call allocations
        results = {"batched": timed(batched, texts, settings)}
        if args.vllm:
            results["vllm"] = timed_vllm(model, texts, settings)
        else:
            results["one_at_a_time"] = timed(TransformersEngine(model, batch_size=1), texts, settings)
    lengths = sorted(batched.count_tokens(t) for t in texts)
    print(
        f"texts: {len(texts)} (prompt tokens min {lengths[0]}, median {lengths[len(lengths) // 2]}, "
        f"max {lengths[-1]}), batch {args.batch_size}, {args.max_new_tokens} new tokens, greedy"
    )
    for name, r in results.items():
        speed = f"{r['texts_per_s']:8.1f} texts/s  {r['tokens_per_s']:9.1f} tokens/s"
        print(f"{name:>14}: {r['seconds']:7.2f} s  {speed}")
    if args.vllm:
        print(f"vLLM engine start-up: {results['vllm']['startup_s']:.1f} s")
        ratio = results["vllm"]["texts_per_s"] / results["batched"]["texts_per_s"]
        print(f"vLLM / transformers batched: {ratio:.2f}x texts/s")
        return
    ratio = results["batched"]["texts_per_s"] / results["one_at_a_time"]["texts_per_s"]
    print(f"ratio: {ratio:.1f}x  target: >= 5x")
    print("target met" if ratio >= 5 else "TARGET MISSED")


def timed_vllm(model: Path, texts: list[str], settings: GenerationSettings) -> dict[str, float]:
    """Start-up time, then texts/s and tokens/s of vLLM's offline batch, warmed up like transformers."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")
    from hala.translate.engines import VLLMEngine, VLLMSettings

    start = time.perf_counter()
    cpu = VLLMSettings(max_model_len=2048, gpu_memory_utilization=0.1, enable_prefix_caching=False)
    engine = VLLMEngine(model, replace(cpu, dtype="float32"))  # fp32, as transformers loads it
    startup = time.perf_counter() - start
    timed(engine, texts[:8], settings)
    return {**timed(engine, texts, settings), "startup_s": startup}


if __name__ == "__main__":
    main()
