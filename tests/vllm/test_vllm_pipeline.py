"""The tiny-vllm preset end to end under the local runner: teacher, judge and corpus through vLLM.

Black-box: ``hala run --preset tiny-vllm`` in a child process with vLLM's production start (each task
spawns its engine core), then what it printed and what it tracked. vLLM logs one line per engine it
starts, naming the model folder and its quantization.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from vllm_cpu import child_env

from hala.config import load_preset

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
ENGINE_LINE = re.compile(
    r"Initializing a V1 LLM engine \(v[\d.]+\) with config: model='([^']+)'.*?quantization=(\S*),"
)
Run = tuple[Path, "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def tiny_vllm_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("tiny-vllm")
    env = {**child_env(), "VLLM_LOGGING_LEVEL": "INFO"}
    env.pop("MLFLOW_TRACKING_URI", None)
    hala = Path(sys.executable).with_name("hala")
    done = subprocess.run(
        [str(hala), "run", "--preset", "tiny-vllm", "--workdir", str(root / "runs")],
        cwd=root,  # the embedded default store is ./mlflow.db
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    (root / "run.log").write_text(done.stdout + done.stderr)
    return root, done


def test_the_run_succeeds(tiny_vllm_run: Run) -> None:
    root, done = tiny_vllm_run
    assert done.returncode == 0, (
        f"hala run --preset tiny-vllm failed; log: {root / 'run.log'}\n{done.stderr[-4000:]}"
    )


def test_translation_judge_and_fp8_validation_ran_on_vllm(
    tiny_vllm_run: Run,
) -> None:
    root, done = tiny_vllm_run
    engines = ENGINE_LINE.findall(done.stdout + done.stderr)
    print(
        "vLLM engines started:",
        *(f"{Path(m).parent.name}/{Path(m).name} [{q}]" for m, q in engines),
    )
    # At least: quantize validates the source and the FP8 teacher, the teacher shard runs the FP8 teacher,
    # the judge shard the judge, the corpus shard the trained translator (Table 2 adds its systems).
    assert len(engines) >= 5, f"{len(engines)} vLLM engines; log: {root / 'run.log'}"
    assert sum(q == "compressed-tensors" for _, q in engines) >= 2  # validation and teacher shard
    assert len({m for m, q in engines if q in ("", "None")}) >= 3  # source teacher, judge, translator
    assert len({m for m, _ in engines}) >= 4


def test_the_parent_run_finished_in_mlflow(
    tiny_vllm_run: Run,
) -> None:
    root, _ = tiny_vllm_run
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name(load_preset("tiny-vllm").tracking.experiment)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`mlflow.parentRunId` IS NULL")
    assert [r.info.status for r in runs] == ["FINISHED"]
