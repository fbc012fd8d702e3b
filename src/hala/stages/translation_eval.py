"""Stage ``translation_eval``: one system on the report's Table 2 protocol (EN->AR MMLU questions).

``eval.mmlu_questions`` questions sampled uniformly from cais/mmlu test with ``eval.seed``; the
English question alone is the source, the Arabic question of the same openai/MMMLU AR_XY item the
reference; each system's fixed prompt, ``{text}`` replaced verbatim, greedy, scored as written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hala.config import EngineConfig, Preset
from hala.stages.settings import StageSettings

RESULT_FILE = "result.json"


class TranslationEvalSettings(StageSettings):
    """The system, its fixed prompt and engine, and the sample's size and seed."""

    system: str
    prompt: str
    engine: EngineConfig
    questions: int
    seed: int


def settings(preset: Preset, *, system: str) -> TranslationEvalSettings:
    """The ``translation_eval`` settings of one system (teachers on the teacher's engine)."""
    from hala.evaluation.translation import system_prompt

    engine = preset.teacher.engine if system.startswith("teacher") else preset.corpus.engine
    return TranslationEvalSettings(
        system=system,
        prompt=system_prompt(preset.eval.translation_prompts, system),
        engine=engine,
        questions=preset.eval.mmlu_questions,
        seed=preset.eval.seed,
    )


@dataclass(frozen=True)
class TranslationScores:
    """One Table 2 row: the corpus scores of one system, over ``n`` questions (``failed`` empty)."""

    system: str
    bleu: float
    chrf: float
    rouge_l: float
    rouge_l_arabic: float
    n: int
    failed: int


def run(
    settings: TranslationEvalSettings, model_dir: str, mmlu_dir: str, mmmlu_dir: str, out_dir: str
) -> TranslationScores:
    """Translate and score; the texts, the prompt and ``result.json`` go to ``out_dir`` and MLflow."""
    import mlflow

    from hala.evaluation.translation import direct_translate_fn, run_benchmark
    from hala.prepare import read_records
    from hala.stages.context import open_stage
    from hala.translate.factory import make_engine

    system = settings.system
    with open_stage(
        f"translation_eval-{system}", inputs=[model_dir, mmlu_dir, mmmlu_dir], outputs=[out_dir]
    ) as stage:
        engine = make_engine(model_dir, settings.engine)
        translate = direct_translate_fn(engine, settings.prompt, settings.engine.max_new_tokens)
        result = run_benchmark(
            system,
            translate,
            settings.prompt,
            read_records(Path(mmlu_dir)),
            read_records(Path(mmmlu_dir)),
            settings.questions,
            settings.seed,
            out_dir,
        )
        mlflow.log_params({"translation.system": system, "translation.prompt": settings.prompt})
        keys = ("bleu", "chrf", "rouge_l", "rouge_l_arabic", "n", "failed")
        stage.log_metrics({f"translation.{k}": float(result[k]) for k in keys})
        mlflow.log_artifacts(result["dir"], f"translation/{system}")
        text = json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False)
        (Path(out_dir) / RESULT_FILE).write_text(text + "\n")
    return TranslationScores(
        system=system,
        bleu=float(result["bleu"]),
        chrf=float(result["chrf"]),
        rouge_l=float(result["rouge_l"]),
        rouge_l_arabic=float(result["rouge_l_arabic"]),
        n=int(result["n"]),
        failed=int(result["failed"]),
    )


def read_result(folder: str | Path) -> dict[str, Any]:
    """The full result a ``translation_eval`` task wrote (scores, alignment counts, prompt, files)."""
    loaded: dict[str, Any] = json.loads((Path(folder) / RESULT_FILE).read_text())
    return loaded
