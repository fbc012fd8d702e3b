"""Engines and runner settings built from preset settings (what every generating stage shares)."""

from __future__ import annotations

from pathlib import Path

from hala.config import EngineConfig, QualityConfig
from hala.translate.engines import Engine, GenerationSettings
from hala.translate.runner import TranslateSettings


def make_engine(model_dir: Path | str, cfg: EngineConfig) -> Engine:
    """The engine a stage's settings ask for, loaded from a model folder."""
    from hala.translate.engines import TransformersEngine, VLLMEngine, VLLMSettings

    if cfg.kind == "vllm":
        settings = VLLMSettings(
            tensor_parallel_size=cfg.tensor_parallel_size,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            enable_prefix_caching=cfg.enable_prefix_caching,
        )
        return VLLMEngine(model_dir, settings)
    return TransformersEngine(model_dir, batch_size=cfg.batch_size, max_model_len=cfg.max_model_len)


def translate_settings(
    cfg: EngineConfig, quality: QualityConfig, seed: int, prompt: str, target_script: str = "arabic"
) -> TranslateSettings:
    """The runner settings of a stage: its prompt and engine limits, and the output checks."""
    from hala.translate.quality import QualityRules
    from hala.translate.runner import sampling_retry

    greedy = GenerationSettings(max_new_tokens=cfg.max_new_tokens, seed=seed)
    rules = QualityRules(
        target_script=target_script,
        min_script_ratio=quality.min_script_ratio,
        max_compression_ratio=quality.max_compression_ratio,
        reject_truncated=quality.reject_truncated,
    )
    return TranslateSettings(
        prompt=prompt,
        max_input_tokens=cfg.max_input_tokens,
        generation=greedy,
        retry=sampling_retry(greedy),
        max_attempts=cfg.max_attempts,
        rules=rules,
    )
