"""Start VLLMEngines one after another as the pipeline's tasks do (engine core spawned); print JSON.

    python tests/vllm/engine_probe.py MODEL_DIR [MODEL_DIR ...]   # the vLLM tier runs it in a child

For each folder: the quantization vLLM chose, the start-up time and the greedy generations of a few
prompts. Several folders in one process is what the FP8 validation does (source, then FP8 teacher);
the process must still exit. The ``__main__`` guard is required: vLLM spawns its engine core, which
re-imports this file.
"""

from __future__ import annotations

import json
import sys
import time

PROMPTS = ["Hello world", "The quick brown fox jumps over the lazy dog.", "مرحبا بكم"]


def probe(model_dir: str) -> None:
    """Start one engine on ``model_dir``, generate, print its report (the engine stays alive)."""
    from hala.translate.engines import GenerationSettings, VLLMEngine, VLLMSettings

    start = time.perf_counter()
    settings = VLLMSettings(max_model_len=2048, gpu_memory_utilization=0.1, enable_prefix_caching=False)
    engine = VLLMEngine(model_dir, settings)
    startup = time.perf_counter() - start
    generations = engine.chat(
        [[{"role": "user", "content": p}] for p in PROMPTS], GenerationSettings(max_new_tokens=8)
    )
    report = {
        "quantization": engine.llm.model_config.quantization,
        "dtype": str(engine.llm.model_config.dtype),
        "startup_s": startup,
        "generations": [[g.text, g.finish_reason, g.completion_tokens] for g in generations],
    }
    print("PROBE " + json.dumps(report, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        probe(folder)
