"""The bilingual judge: verdicts from label log-probabilities, on a tiny model and from vLLM outputs."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hala.judge import (
    LABELS,
    Judgement,
    JudgeSettings,
    TransformersJudge,
    VLLMJudge,
    decide,
    verdict_counts,
    vllm_label_scores,
)

PROMPT = "Is the Arabic a faithful translation of the English?\nEnglish: {en}\nArabic: {ar}\nAnswer:"
PAIRS = [
    ("Hello world.", "مرحبا بالعالم."),
    ("The cat sat on the mat.", "جلس القط على الحصيرة."),
    ("Good morning, how are you today?", "صباح الخير، كيف حالك اليوم؟"),
]
LONG_PAIR = ("word " * 3000, "كلمة")


@pytest.fixture(scope="module")
def judge(tiny_models: dict[str, Path]) -> TransformersJudge:
    # min_label_mass=0: the random tiny model puts little mass on either label, and the verdict is
    # then read from the two scores alone.
    return TransformersJudge(tiny_models["judge"], JudgeSettings(prompt=PROMPT, min_label_mass=0.0))


@pytest.fixture(scope="module")
def judged(judge: TransformersJudge) -> list[Judgement]:
    return judge.judge(PAIRS)


@pytest.fixture(scope="module")
def forced(judge: TransformersJudge) -> dict[str, tuple[float, float]]:
    """Independent label scores for ``PAIRS[1]``: label -> (sum of log-probs, P(first token))."""
    return {label: _teacher_forced(judge, _prompt_ids(judge, *PAIRS[1]), label) for label in LABELS}


def _prompt_ids(judge: TransformersJudge, en: str, ar: str) -> list[int]:
    text = judge.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT.format(en=en, ar=ar)}], add_generation_prompt=True, tokenize=False
    )
    return list(judge.tokenizer(text, add_special_tokens=False)["input_ids"])


def _next_token_logprobs(judge: TransformersJudge, ids: list[int]) -> Any:
    import torch

    with torch.no_grad():
        logits = judge.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return torch.log_softmax(logits, dim=-1)


def _teacher_forced(judge: TransformersJudge, prompt: list[int], label: str) -> tuple[float, float]:
    """Sum of the label tokens' log-probs after ``prompt``, one forward pass per token; and P(first)."""
    ids = judge.tokenizer(label, add_special_tokens=False)["input_ids"]
    total, first = 0.0, 0.0
    for k, token in enumerate(ids):
        logprob = float(_next_token_logprobs(judge, prompt + ids[:k])[token])
        total += logprob
        if k == 0:
            first = math.exp(logprob)
    return total, first


# --- decide ---------------------------------------------------------------------------------------


def test_decide_accept_and_reject() -> None:
    assert decide(-1.0, -2.0, 0.9, 0.5) == "accept"
    assert decide(-2.0, -1.0, 0.9, 0.5) == "reject"
    # A tie is not an acceptance.
    assert decide(-1.0, -1.0, 0.9, 0.5) == "reject"


def test_decide_unreadable_when_label_mass_is_below_threshold() -> None:
    assert decide(-0.1, -5.0, 0.49, 0.5) == "unreadable"
    assert decide(-0.1, -5.0, 0.5, 0.5) == "accept"
    assert decide(-0.1, -5.0, 0.0, 0.0) == "accept"


def test_decide_unreadable_when_both_scores_are_minus_infinity() -> None:
    assert decide(-math.inf, -math.inf, 1.0, 0.0) == "unreadable"
    assert decide(math.nan, math.nan, 1.0, 0.0) == "unreadable"


def test_decide_with_one_impossible_label() -> None:
    assert decide(-math.inf, -3.0, 1.0, 0.5) == "reject"
    assert decide(-3.0, -math.inf, 1.0, 0.5) == "accept"


# --- TransformersJudge ----------------------------------------------------------------------------


def test_prompt_ids_render_the_judge_prompt(judge: TransformersJudge) -> None:
    en, ar = PAIRS[0]
    ids = judge.prompt_ids(en, ar)
    assert ids == _prompt_ids(judge, en, ar)
    assert judge.tokenizer.decode(ids).endswith("Answer:<|im_end|>\n<|im_start|>assistant\n")
    assert en in judge.tokenizer.decode(ids)
    assert ar in judge.tokenizer.decode(ids)


def test_one_judgement_per_pair_in_order(judge: TransformersJudge, judged: list[Judgement]) -> None:
    assert len(judged) == len(PAIRS)
    assert judged == [judge.judge([pair])[0] for pair in PAIRS]
    # Different pairs get different scores, so a mix-up would show.
    assert len({j.logprob_accept for j in judged}) == len(PAIRS)
    assert judge.judge([]) == []


def test_verdict_follows_the_two_logprobs(judged: list[Judgement]) -> None:
    for judgement in judged:
        assert math.isfinite(judgement.logprob_accept)
        assert math.isfinite(judgement.logprob_reject)
        assert judgement.logprob_accept < 0
        assert judgement.logprob_reject < 0
        expected = "accept" if judgement.logprob_accept > judgement.logprob_reject else "reject"
        assert judgement.verdict == expected


def test_logprobs_equal_an_independent_teacher_forced_computation(
    judge: TransformersJudge, judged: list[Judgement], forced: dict[str, tuple[float, float]]
) -> None:
    judgement = judged[1]
    assert judgement.logprob_accept == pytest.approx(forced["accept"][0], abs=1e-4)
    assert judgement.logprob_reject == pytest.approx(forced["reject"][0], abs=1e-4)
    # Multi-token labels: the sum is over more than the first token.
    assert len(judge.label_ids[0]) > 1


def test_min_label_mass_uses_first_label_token_probabilities(
    judge: TransformersJudge, forced: dict[str, tuple[float, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    en, ar = PAIRS[1]
    mass = forced["accept"][1] + forced["reject"][1]
    assert 0 < mass < 1
    monkeypatch.setattr(judge, "settings", JudgeSettings(prompt=PROMPT, min_label_mass=mass * 0.99))
    [readable] = judge.judge([(en, ar)])
    assert readable.verdict in ("accept", "reject")
    monkeypatch.setattr(judge, "settings", JudgeSettings(prompt=PROMPT, min_label_mass=mass * 1.01))
    [unreadable] = judge.judge([(en, ar)])
    assert unreadable.verdict == "unreadable"
    # The scores are still reported for an unreadable pair whose prompt fits.
    assert unreadable.logprob_accept == readable.logprob_accept


def test_default_threshold_marks_an_indifferent_model_unreadable(
    judge: TransformersJudge, forced: dict[str, tuple[float, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The random tiny model puts far less than the default 0.5 on the first tokens of the labels.
    assert forced["accept"][1] + forced["reject"][1] < 0.5
    monkeypatch.setattr(judge, "settings", JudgeSettings(prompt=PROMPT))
    assert judge.settings.min_label_mass == 0.5
    assert [j.verdict for j in judge.judge(PAIRS[1:2])] == ["unreadable"]


def test_prompt_longer_than_the_context_is_unreadable(
    judge: TransformersJudge, judged: list[Judgement]
) -> None:
    assert len(judge.prompt_ids(*LONG_PAIR)) > judge.model.config.max_position_embeddings
    judgements = judge.judge([PAIRS[0], LONG_PAIR, PAIRS[1]])
    assert judgements[1] == Judgement("unreadable", -math.inf, -math.inf)
    assert [judgements[0], judgements[2]] == judged[:2]


# --- vLLM glue ------------------------------------------------------------------------------------


def _logprob(value: float) -> SimpleNamespace:
    return SimpleNamespace(logprob=value)


def test_vllm_label_scores_sums_the_label_positions() -> None:
    # prompt = [5, 6, 7], label = [8, 9]; vLLM adds top-ranked tokens beside the actual one.
    output = SimpleNamespace(
        prompt_token_ids=[5, 6, 7, 8, 9],
        prompt_logprobs=[
            None,
            {6: _logprob(-1.0)},
            {7: _logprob(-3.0), 1: _logprob(-0.1)},
            {8: _logprob(-0.5), 3: _logprob(-0.2)},
            {9: _logprob(-0.25), 4: _logprob(-0.01)},
        ],
    )
    total, first = vllm_label_scores(output, prompt_len=3)
    assert total == pytest.approx(-0.75)
    assert first == pytest.approx(math.exp(-0.5))


def test_vllm_label_scores_single_token_label() -> None:
    output = SimpleNamespace(prompt_token_ids=[1, 2], prompt_logprobs=[None, {2: _logprob(-2.0)}])
    assert vllm_label_scores(output, prompt_len=1) == pytest.approx((-2.0, math.exp(-2.0)))


class _FakeLLM:
    """A stand-in for ``vllm.LLM`` at the process boundary, scoring prompts with the tiny judge model."""

    def __init__(self, judge: TransformersJudge) -> None:
        self.judge = judge
        self.model_config = SimpleNamespace(max_model_len=judge.max_len)  # as vllm.LLM.model_config
        self.requests: list[Any] = []
        self.sampling: Any = None

    def get_tokenizer(self) -> Any:
        return self.judge.tokenizer

    def generate(self, requests: list[Any], sampling: Any, use_tqdm: bool = True) -> list[Any]:
        import torch

        self.requests, self.sampling = list(requests), sampling
        outputs = []
        for request in requests:
            ids = request["prompt_token_ids"]
            assert all(isinstance(t, int) for t in ids), f"prompt_token_ids must be token ids: {ids[:4]}"
            with torch.no_grad():
                logits = self.judge.model(input_ids=torch.tensor([ids])).logits[0].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            prompt_logprobs = [None] + [
                {ids[i]: _logprob(float(logprobs[i - 1, ids[i]]))} for i in range(1, len(ids))
            ]
            outputs.append(SimpleNamespace(prompt_token_ids=list(ids), prompt_logprobs=prompt_logprobs))
        return outputs


def test_vllm_judge_agrees_with_transformers_judge(
    judge: TransformersJudge, judged: list[Judgement], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_vllm = types.ModuleType("vllm")
    fake_vllm.SamplingParams = lambda **kwargs: SimpleNamespace(**kwargs)  # type: ignore[attr-defined]
    fake_vllm.TokensPrompt = dict  # type: ignore[attr-defined]  # a TypedDict in vLLM
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    llm = _FakeLLM(judge)

    judgements = VLLMJudge(llm, judge.settings).judge(PAIRS)

    assert llm.sampling.max_tokens == 1
    assert llm.sampling.prompt_logprobs == 0
    assert len(llm.requests) == 2 * len(PAIRS)
    expected = judged
    assert [j.verdict for j in judgements] == [j.verdict for j in expected]
    for got, want in zip(judgements, expected, strict=True):
        assert got.logprob_accept == pytest.approx(want.logprob_accept, abs=1e-4)
        assert got.logprob_reject == pytest.approx(want.logprob_reject, abs=1e-4)


# --- verdict_counts -------------------------------------------------------------------------------


def test_verdict_counts() -> None:
    judgements = [
        Judgement("accept", -1.0, -2.0),
        Judgement("accept", -1.0, -3.0),
        Judgement("reject", -4.0, -2.0),
        Judgement("unreadable", -math.inf, -math.inf),
    ]
    assert verdict_counts(judgements) == {
        "accept": 2.0,
        "reject": 1.0,
        "unreadable": 1.0,
        "acceptance_rate": 0.5,
    }


def test_verdict_counts_empty() -> None:
    assert verdict_counts([]) == {"accept": 0.0, "reject": 0.0, "unreadable": 0.0, "acceptance_rate": 0.0}


# --- the verdict is the label greedy decoding would emit ------------------------------------------

PAPER_PAIRS = [
    ("Hello world.", "مرحبا بالعالم."),
    ("The cat sat on the mat.", "جلس القط على الحصيرة."),
    ("Good morning, how are you today?", "صباح الخير، كيف حالك اليوم؟"),
    ("Water boils at one hundred degrees.", "يغلي الماء عند مئة درجة."),
    ("I like reading books.", "أحب قراءة الكتب."),
    ("The train leaves at noon.", "يغادر القطار عند الظهر."),
]


def _taught_judge(tiny_models: dict[str, Path], prompt: str) -> TransformersJudge:
    """The tiny judge, taught a few steps to answer a label, so that greedy decoding emits labels."""
    import torch

    judge = TransformersJudge(tiny_models["judge"], JudgeSettings(prompt=prompt, min_label_mass=0.0))
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(judge.model.parameters(), lr=3e-3)
    targets = [LABELS[i % 2] for i in range(len(PAPER_PAIRS))]
    judge.model.train()
    with torch.enable_grad():  # independent of any library that turned autograd off in this process
        _teach(judge, targets, torch, optimiser)
    judge.model.eval()
    return judge


def _teach(judge: TransformersJudge, targets: list[str], torch: Any, optimiser: Any) -> None:
    """Forty passes of next-token loss on the label after each prompt."""
    for _ in range(40):
        for (en, ar), label in zip(PAPER_PAIRS, targets, strict=True):
            prompt_ids = judge.prompt_ids(en, ar)
            label_ids = judge.label_ids[LABELS.index(label)]
            ids = torch.tensor([prompt_ids + label_ids])
            labels = torch.tensor([[-100] * len(prompt_ids) + label_ids])
            loss = judge.model(input_ids=ids, labels=labels).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()


def test_logprob_verdict_equals_greedy_generation_of_the_paper_prompt(tiny_models: dict[str, Path]) -> None:
    """Report 2.3: the judge emits accept/reject; our verdict is the label greedy decoding emits."""
    import torch

    from hala.config import load_preset

    prompt = load_preset("paper").judge.prompt
    judge = _taught_judge(tiny_models, prompt)
    verdicts = judge.judge(PAPER_PAIRS)
    compared = []
    for (en, ar), judgement in zip(PAPER_PAIRS, verdicts, strict=True):
        ids = torch.tensor([judge.prompt_ids(en, ar)])
        longest = max(len(label) for label in judge.label_ids)
        with torch.no_grad():
            out = judge.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=longest, do_sample=False
            )
        new = out[0, ids.shape[1] :].tolist()
        pairs = zip(LABELS, judge.label_ids, strict=True)
        emitted = [label for label, label_ids in pairs if new[: len(label_ids)] == label_ids]
        if emitted:
            compared.append(judgement.verdict)
            assert judgement.verdict == emitted[0], (en, judgement, judge.tokenizer.decode(new))
    # The comparison must have happened for both labels, or the test proves nothing.
    assert set(compared) == set(LABELS), compared
