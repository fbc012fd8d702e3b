"""The judge's verdicts from vLLM prompt log-probs against the transformers judge's, on the same pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

from vllm_cpu import LOGPROB_TOLERANCE

from hala.config import load_preset
from hala.judge import JudgeSettings, TransformersJudge, VLLMJudge
from hala.translate.engines import VLLMEngine

ROOT = Path(__file__).resolve().parents[2]


def judge_prompt() -> str:
    """paper.yaml's judge prompt: the report's (section 2.3), with {en} and {ar}."""
    return load_preset("paper").judge.prompt


def opus_pairs() -> list[tuple[str, str]]:
    """The OPUS-100 fixture's (English, Arabic) pairs, and one that cannot fit the context."""
    pairs = []
    for line in (ROOT / "fixtures" / "sources" / "opus100" / "train.jsonl").read_text().splitlines():
        translation = json.loads(line)["translation"]
        if translation["en"].strip() and translation["ar"].strip():
            pairs.append((translation["en"], translation["ar"]))
    return [*pairs[:40], ("word " * 3000, "كلمة")]


def test_vllm_judge_agrees_with_the_transformers_judge(vllm_engine: VLLMEngine, teacher_dir: Path) -> None:
    """Same model (the session's engine), same pairs; a verdict may differ only on a near-tie."""
    settings = JudgeSettings(prompt=judge_prompt(), min_label_mass=0.0)
    pairs = opus_pairs()
    got = VLLMJudge(vllm_engine.llm, settings).judge(pairs)
    want = TransformersJudge(teacher_dir, settings).judge(pairs)
    assert len(got) == len(want) == len(pairs)
    assert got[-1].verdict == want[-1].verdict == "unreadable"  # longer than max_model_len: no request
    agree = sum(g.verdict == w.verdict for g, w in zip(got, want, strict=True))
    print(f"judge verdicts equal, vLLM vs transformers: {agree}/{len(pairs)}")
    for g, w in zip(got[:-1], want[:-1], strict=True):
        assert math.isclose(g.logprob_accept, w.logprob_accept, abs_tol=2 * LOGPROB_TOLERANCE)
        assert math.isclose(g.logprob_reject, w.logprob_reject, abs_tol=2 * LOGPROB_TOLERANCE)
        if g.verdict != w.verdict:  # only where the transformers margin is inside the kernels' difference
            assert abs(w.logprob_accept - w.logprob_reject) < 4 * LOGPROB_TOLERANCE
    assert agree >= 0.8 * len(pairs)
