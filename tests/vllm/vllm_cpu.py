"""Settings shared by the vLLM tier: the CPU engine, tolerances, and child processes' environment."""

from __future__ import annotations

import os

from hala.translate.engines import VLLMSettings

# fp32 as the transformers engine loads the tiny models; 0.1 of RAM for the KV cache (0.9 is refused on
# CPU); the tiny models' context; prefix caching off for LFM2 (LightEval's advice, as the presets do).
VLLM_CPU_SETTINGS = VLLMSettings(
    max_model_len=2048, gpu_memory_utilization=0.1, enable_prefix_caching=False, dtype="float32"
)
# Log-prob agreement between vLLM's CPU kernels and transformers on the tiny models. Measured: the first
# predicted position (one token, no attention mixing) agrees to 1e-5; later positions differ by up to
# ~0.2 nats, the same with dtype float32 and bfloat16, so this is not rounding (issue 16's note).
FIRST_POSITION_TOLERANCE = 1e-4
LOGPROB_TOLERANCE = 0.35


def child_env() -> dict[str, str]:
    """The environment of a child process that starts vLLM as production does (engine core spawned).

    ``nobind``: side-by-side engines would otherwise all pin their threads to core 0.
    """
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    return {**env, "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
