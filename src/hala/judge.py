"""The strict bilingual judge: accept or reject an English-Arabic pair, read from label log-probabilities.

The verdict is never parsed out of free text. For each pair the judge model scores the two labels as
continuations of the judge prompt (the sum of the label tokens' log-probabilities, teacher-forced) and
the higher one wins. A pair is ``unreadable`` when the prompt does not fit the model's context or when
the two labels together hold less than ``min_label_mass`` of the probability of the first label token
(the model is not answering the question); unreadable pairs are counted and not accepted.

Why this is the report's protocol: the report prompts the judge "to emit a binary verdict (accept/
reject)" and keeps the pairs marked accept (section 2.3). Under greedy decoding the model emits the label
whose tokens are more likely; comparing the two labels' log-probabilities reads that same verdict
without sampling text that could drift into anything else ("Accept.", an explanation), and it says when
the model is not answering at all (``unreadable``). ``tests/test_judge.py`` checks on the tiny judge
that the verdict equals greedy generation wherever generation emits one of the labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["accept", "reject", "unreadable"]
LABELS = ("accept", "reject")


@dataclass(frozen=True)
class JudgeSettings:
    """The judge prompt (with ``{en}`` and ``{ar}``) and the readability threshold."""

    prompt: str
    min_label_mass: float = 0.5


@dataclass(frozen=True)
class Judgement:
    """A verdict with the two label log-probabilities behind it."""

    verdict: Verdict
    logprob_accept: float
    logprob_reject: float


def decide(
    logprob_accept: float, logprob_reject: float, first_token_mass: float, min_label_mass: float
) -> Verdict:
    """The verdict from the label scores; ``first_token_mass`` is P(first token of either label)."""
    if (
        not (math.isfinite(logprob_accept) or math.isfinite(logprob_reject))
        or first_token_mass < min_label_mass
    ):
        return "unreadable"
    return "accept" if logprob_accept > logprob_reject else "reject"


class TransformersJudge:
    """Label scoring with a transformers causal LM (CPU or one GPU)."""

    def __init__(self, model_dir: Path | str, settings: JudgeSettings) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer: Any = AutoTokenizer.from_pretrained(model_dir)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        loaded: Any = AutoModelForCausalLM.from_pretrained(model_dir)
        self.model: Any = loaded.to(device).eval()
        self.settings = settings
        self.max_len = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.label_ids = [self.tokenizer(label, add_special_tokens=False)["input_ids"] for label in LABELS]

    def prompt_ids(self, en: str, ar: str) -> list[int]:
        """The judge conversation, rendered up to the start of the assistant's answer."""
        content = self.settings.prompt.format(en=en, ar=ar)
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )
        return list(rendered["input_ids"])

    def judge(self, pairs: Sequence[tuple[str, str]]) -> list[Judgement]:
        """Judge ``(english, arabic)`` pairs; one judgement per pair, in order."""
        import torch

        out: list[Judgement] = []
        for en, ar in pairs:
            prompt = self.prompt_ids(en, ar)
            if len(prompt) + max(len(ids) for ids in self.label_ids) > self.max_len:
                out.append(Judgement("unreadable", -math.inf, -math.inf))
                continue
            scores, first_mass = [], 0.0
            for label in self.label_ids:
                ids = torch.tensor([prompt + label], device=self.model.device)
                with torch.no_grad():
                    logits = self.model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                scores.append(float(logprobs[torch.arange(len(label)), torch.tensor(label)].sum()))
                first_mass += float(logprobs[0, label[0]].exp())
            out.append(
                Judgement(decide(scores[0], scores[1], first_mass, self.settings.min_label_mass), *scores)
            )
        return out


class VLLMJudge:
    """Label scoring with vLLM: each ``prompt + label`` is scored through its prompt log-probabilities.

    Prompts are the token ids of the same chat template :class:`TransformersJudge` renders, so both
    judges score the same tokens; a pair whose prompt and label do not fit the engine's
    ``max_model_len`` is ``unreadable`` without a request (vLLM would refuse the whole batch).
    """

    def __init__(self, llm: Any, settings: JudgeSettings) -> None:
        self.llm = llm  # a vllm.LLM, shared with the engine that loaded the judge model
        self.tokenizer = llm.get_tokenizer()
        self.settings = settings
        self.max_len = int(llm.model_config.max_model_len)
        self.label_ids = [self.tokenizer(label, add_special_tokens=False)["input_ids"] for label in LABELS]

    def prompt_ids(self, en: str, ar: str) -> list[int]:
        """The judge conversation, rendered up to the start of the assistant's answer."""
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": self.settings.prompt.format(en=en, ar=ar)}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )
        return list(rendered["input_ids"])

    def judge(self, pairs: Sequence[tuple[str, str]]) -> list[Judgement]:
        """Judge ``(english, arabic)`` pairs in one offline batch of two scorings per readable pair."""
        from vllm import SamplingParams, TokensPrompt  # type: ignore[import-not-found]

        prompts = [self.prompt_ids(en, ar) for en, ar in pairs]
        longest_label = max(len(ids) for ids in self.label_ids)
        fits = [len(p) + longest_label <= self.max_len for p in prompts]
        requests = [
            TokensPrompt(prompt_token_ids=p + label)
            for p, ok in zip(prompts, fits, strict=True)
            if ok
            for label in self.label_ids
        ]
        outputs = iter(
            self.llm.generate(requests, SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
            if requests
            else []
        )
        judgements = []
        for prompt, ok in zip(prompts, fits, strict=True):
            if not ok:
                judgements.append(Judgement("unreadable", -math.inf, -math.inf))
                continue
            scores = [vllm_label_scores(next(outputs), len(prompt)) for _ in LABELS]
            (acc, acc_first), (rej, rej_first) = scores
            verdict = decide(acc, rej, acc_first + rej_first, self.settings.min_label_mass)
            judgements.append(Judgement(verdict, acc, rej))
        return judgements


def vllm_label_scores(output: Any, prompt_len: int) -> tuple[float, float]:
    """Sum of label-token log-probs and the first label token's probability from a vLLM output.

    ``output`` is the ``RequestOutput`` of ``prompt + label`` generated with ``prompt_logprobs=0``;
    its ``prompt_logprobs`` list holds, per position, a mapping token id -> Logprob.
    """
    total, first = 0.0, 0.0
    for position in range(prompt_len, len(output.prompt_token_ids)):
        token = output.prompt_token_ids[position]
        logprob = output.prompt_logprobs[position][token].logprob
        total += logprob
        if position == prompt_len:
            first = math.exp(logprob)
    return total, first


def verdict_counts(judgements: Sequence[Judgement]) -> dict[str, float]:
    """Accept, reject and unreadable counts and the acceptance rate (for MLflow)."""
    counts = {
        label: sum(1 for j in judgements if j.verdict == label)
        for label in ("accept", "reject", "unreadable")
    }
    total = max(1, len(judgements))
    return {**{k: float(v) for k, v in counts.items()}, "acceptance_rate": counts["accept"] / total}
