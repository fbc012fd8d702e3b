"""Benchmark: the transformers engine on the tiny teacher, batched and length-sorted vs one text at a time.

    python bench/translate.py                 # 300 texts, batch 32, 32 new tokens each
    python bench/translate.py --texts 100     # quicker

The texts are prose segments of the fixture datasets (the chunker's output, so lengths are mixed as
in a real shard). Both runs use the same prompts, greedy decoding and the same model, in one
process. Target (issue 3): the batched engine at least 5x the texts/s of one text at a time on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hala.tiny_models import save_tiny_model
from hala.translate.chunking import mask_spans, split_for_translation
from hala.translate.engines import GenerationSettings, TransformersEngine

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


def timed(engine: TransformersEngine, texts: list[str], settings: GenerationSettings) -> dict[str, float]:
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = save_tiny_model("teacher", Path(tmp) / "teacher")
        batched = TransformersEngine(model, batch_size=args.batch_size)
        single = TransformersEngine(model, batch_size=1)
        texts = fixture_texts(args.texts, batched, args.max_input_tokens)
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
        timed(batched, texts[:8], settings)  # warm-up: first-call allocations
        results = {
            "batched": timed(batched, texts, settings),
            "one_at_a_time": timed(single, texts, settings),
        }
    lengths = sorted(batched.count_tokens(t) for t in texts)
    print(
        f"texts: {len(texts)} (prompt tokens min {lengths[0]}, median {lengths[len(lengths) // 2]}, "
        f"max {lengths[-1]}), batch {args.batch_size}, {args.max_new_tokens} new tokens, greedy"
    )
    for name, r in results.items():
        speed = f"{r['texts_per_s']:8.1f} texts/s  {r['tokens_per_s']:9.1f} tokens/s"
        print(f"{name:>14}: {r['seconds']:7.2f} s  {speed}")
    ratio = results["batched"]["texts_per_s"] / results["one_at_a_time"]["texts_per_s"]
    print(f"ratio: {ratio:.1f}x  target: >= 5x")
    print("target met" if ratio >= 5 else "TARGET MISSED")


if __name__ == "__main__":
    main()
