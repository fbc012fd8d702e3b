from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hala.config import TrainingConfig
from hala.errors import HalaError
from hala.training.data import check_examples, training_chat_template
from hala.training.launch import needs_launcher, torchrun_command
from hala.training.sft import SFTJob, gradient_accumulation, last_checkpoint, sft_config

TRAINING = {
    "learning_rate": 1e-3,
    "epochs": 1,
    "max_steps": 8,
    "effective_batch_size": 8,
    "per_device_batch_size": 8,
    "max_length": 256,
    "warmup_ratio": 0.1,
    "lr_scheduler": "cosine",
    "packing": True,
    "bf16": False,
    "save_steps": 4,
    "logging_steps": 2,
    "deepspeed": "none",
}


def _conversation(i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a careful translator."},
        {"role": "user", "content": f"Translate from English to Arabic: good morning number {i}"},
        {"role": "assistant", "content": f"صباح الخير رقم {i}"},
    ]


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "train.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"messages": [_conversation(i) for i in range(80)]}), path)
    return path


def _job(tiny_models: dict[str, Path], train_file: Path, tmp_path: Path, **training: object) -> SFTJob:
    return SFTJob(
        model_dir=str(tiny_models["student"]),
        train_files=[str(train_file)],
        output_dir=str(tmp_path / "out"),
        checkpoint_dir=str(tmp_path / "ck"),
        training={**TRAINING, **training},
        seed=0,
    )


def _trainer(job: SFTJob) -> object:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(job.model_dir)
    data = Dataset(pa.table({"messages": [_conversation(i) for i in range(4)]}))
    return SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(job.model_dir),
        args=sft_config(job, 1),
        train_dataset=data,
        processing_class=tokenizer,
    )


@pytest.mark.parametrize("packing", [False, True])
def test_loss_only_on_assistant_tokens(
    tiny_models: dict[str, Path], train_file: Path, tmp_path: Path, packing: bool
) -> None:
    trainer = _trainer(_job(tiny_models, train_file, tmp_path, packing=packing))
    batch = next(iter(trainer.get_train_dataloader()))  # type: ignore[attr-defined]
    tokenizer = trainer.processing_class  # type: ignore[attr-defined]
    ids, labels = batch["input_ids"], batch["labels"]
    trained = " ".join(tokenizer.decode(i[lab != -100]) for i, lab in zip(ids, labels, strict=True))
    ignored = " ".join(
        tokenizer.decode(i[(lab == -100) & (i != tokenizer.pad_token_id)])
        for i, lab in zip(ids, labels, strict=True)
    )
    for i in range(4):
        assert f"صباح الخير رقم {i}" in trained
        assert f"good morning number {i}" in ignored
    assert "good morning" not in trained
    assert "careful translator" not in trained
    assert "<|im_end|>" in trained  # the model learns to stop
    if packing:  # padding-free: several examples share one row, boundaries passed as position ids
        assert "position_ids" in batch
        assert int((batch["position_ids"][0] == 0).sum()) == 4


def test_recognised_template_hashes_are_the_installed_trls() -> None:
    """Preflight's TRL-free list matches what the installed TRL's get_training_chat_template swaps."""
    import hashlib
    from importlib import resources

    from hala.training.data import TRL_RECOGNISED_TEMPLATES

    folder = resources.files("trl").joinpath("chat_templates")
    names = {p.name.removesuffix(".jinja") for p in folder.iterdir() if p.name.endswith(".jinja")}
    swapped = {n for n in names if not n.endswith("_training") and f"{n}_training" in names}
    digests = {hashlib.sha256(folder.joinpath(f"{n}.jinja").read_bytes()).hexdigest(): n for n in swapped}
    assert digests == TRL_RECOGNISED_TEMPLATES


@pytest.mark.parametrize("template", ["lfm2", "lfm2_v2"])
def test_trl_swaps_in_its_training_template_for_lfm2(
    tiny_models: dict[str, Path], train_file: Path, tmp_path: Path, template: str
) -> None:
    """Both LFM2 revisions LiquidAI/LFM2-1.2B has shipped go through TRL's own swap, end-of-turn trained."""
    import shutil
    from importlib import resources

    from trl.chat_template_utils import get_training_chat_template

    folder = resources.files("trl").joinpath("chat_templates")
    model = tmp_path / "student"
    shutil.copytree(tiny_models["student"], model)
    (model / "chat_template.jinja").write_text(
        folder.joinpath(f"{template}.jinja").read_text("utf-8"), "utf-8"
    )
    job = _job({"student": model}, train_file, tmp_path)
    trainer = _trainer(job)
    training = folder.joinpath(f"{template}_training.jinja").read_text(encoding="utf-8")
    assert trainer.chat_template == training  # type: ignore[attr-defined]
    assert get_training_chat_template(trainer.processing_class) == training  # type: ignore[attr-defined]
    batch = next(iter(trainer.get_train_dataloader()))  # type: ignore[attr-defined]
    tokenizer = trainer.processing_class  # type: ignore[attr-defined]
    trained = tokenizer.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert "صباح الخير رقم 0<|im_end|>" in trained and "good morning" not in trained


def test_a_template_trl_cannot_mask_stops_before_training(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["student"])
    assert training_chat_template(tokenizer, "tiny:student") is not None
    tokenizer.chat_template += "\n"  # not byte-identical to TRL's copy any more
    with pytest.raises(
        HalaError, match=r"QCRI/Fanar-1-9B-Instruct: its chat template has no \{% generation %\}"
    ):
        training_chat_template(tokenizer, "QCRI/Fanar-1-9B-Instruct")
    tokenizer.chat_template = None
    with pytest.raises(HalaError, match="no chat template"):
        training_chat_template(tokenizer, "m")


# --- QCRI/Fanar-1-9B-Instruct (the 9B student's base) ------------------------------------------------

FANAR = Path(__file__).parents[1] / "fixtures" / "chat_templates" / "fanar-1-9b-instruct.json"


def _fanar_prefix() -> str:
    """The first part of Fanar's own template, verbatim (the fixture cites revision and source)."""
    doc = json.loads(FANAR.read_text(encoding="utf-8"))
    assert doc["revision"] == "d30938d0efb1fd251727ee96df6987802ff84662" and doc["complete"] is False
    return str(doc["chat_template_prefix"])


def _fanar_own() -> str:
    """Fanar's own system/user/assistant rendering: its real branches, closed after the assistant one."""
    head = _fanar_prefix().split("{% elif message['role'] == 'thinking' %}")[0]
    assert head.endswith("{{ content + '<end_of_turn>\n' }}")
    return head + "{% endif %}{% endfor %}"


def _fanar_tokenizer(tiny_models: dict[str, Path]) -> object:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["student"])
    tokenizer.chat_template = _fanar_own()
    return tokenizer


def test_fanars_template_is_none_trl_can_mask(tiny_models: dict[str, Path]) -> None:
    """No marker in its assistant branch, and no TRL template starts as Fanar's does, whatever its tail."""
    from importlib import resources

    from hala.training.data import GENERATION_MARKER, assistant_mask_source

    prefix = _fanar_prefix()
    assert not GENERATION_MARKER.search(prefix)
    folder = resources.files("trl").joinpath("chat_templates")
    trl_templates = [p.read_text("utf-8") for p in folder.iterdir() if p.name.endswith(".jinja")]
    assert not [t for t in trl_templates if t.startswith(prefix[:14])]  # "{{ '<bos>' }}{%"
    assert assistant_mask_source(_fanar_own()) is None
    with pytest.raises(HalaError) as caught:
        training_chat_template(_fanar_tokenizer(tiny_models), "QCRI/Fanar-1-9B-Instruct")
    assert "set training.training_chat_template" in str(caught.value)
    assert "QCRI/Fanar-1-9B-Instruct: fanar1_training.jinja" in str(caught.value)


def _fanar_conversations() -> list[list[dict[str, str]]]:
    return [
        _conversation(3),
        _conversation(4)[1:],
        [
            *_conversation(5),
            {"role": "user", "content": "and again?"},
            {"role": "assistant", "content": "مرة أخرى"},
        ],
    ]


def test_fanar_training_copy_renders_as_fanars_own_and_masks_each_answer(
    tiny_models: dict[str, Path],
) -> None:
    """Byte for byte Fanar's rendering; the mask is each answer with its <end_of_turn>, nothing else."""
    tokenizer = _fanar_tokenizer(tiny_models)
    marked = training_chat_template(tokenizer, "QCRI/Fanar-1-9B-Instruct", "fanar1_training.jinja")
    assert marked is not None
    for messages in _fanar_conversations():
        own = tokenizer.apply_chat_template(messages, tokenize=False)  # type: ignore[attr-defined]
        assert tokenizer.apply_chat_template(messages, tokenize=False, chat_template=marked) == own  # type: ignore[attr-defined]
        out = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            messages, chat_template=marked, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
        answers = "".join(m["content"] + "<end_of_turn>\n" for m in messages if m["role"] == "assistant")
        assert tokenizer.decode(ids) == answers  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="not 'thinking'"):
        tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            [{"role": "user", "content": "q"}, {"role": "thinking", "content": "t"}], chat_template=marked
        )


def test_sft_trains_fanar_through_the_presets_training_template(
    tiny_models: dict[str, Path], train_file: Path, tmp_path: Path
) -> None:
    """Set, SFT masks with it and the saved model keeps Fanar's own template; unset, SFT names the field."""
    import shutil

    from hala.training.sft import train_sft

    model = tmp_path / "fanar"
    shutil.copytree(tiny_models["student"], model)
    (model / "chat_template.jinja").write_text(_fanar_own(), "utf-8")
    job = _job({"student": model}, train_file, tmp_path, max_steps=2, save_steps=2)
    with pytest.raises(HalaError, match=r"set training\.training_chat_template"):
        train_sft(job)
    job = _job(
        {"student": model},
        train_file,
        tmp_path,
        max_steps=2,
        save_steps=2,
        training_chat_template="fanar1_training.jinja",
    )
    result = train_sft(job)
    assert result.global_step == 2 and result.train_tokens > 0
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path / "out").chat_template == _fanar_own()
    with pytest.raises(HalaError, match="is not a template in"):
        training_chat_template(None, "m", "../gemma.jinja")


def test_effective_batch_needs_whole_accumulation() -> None:
    cfg = TrainingConfig.model_validate({**TRAINING, "effective_batch_size": 128, "per_device_batch_size": 8})
    assert gradient_accumulation(cfg, 8) == 2
    assert gradient_accumulation(cfg, 1) == 16
    with pytest.raises(HalaError, match="not a multiple of per_device_batch_size 8 x 3"):
        gradient_accumulation(cfg, 3)


def test_examples_are_checked_and_counted(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["student"])
    long_prompt = [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]
    long_answer = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "كلمة " * 400}]
    rows = [
        _conversation(1),
        None,
        [{"role": "user", "content": "only a question"}],
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}],
        [{"role": "narrator", "content": "q"}, {"role": "assistant", "content": "a"}],
        long_prompt,
        long_answer,
    ]
    kept, counts = check_examples(rows, tokenizer, max_length=128)
    assert counts.rejected == {
        "no_messages": 1,
        "no_assistant_turn": 1,
        "empty_turn": 1,
        "unknown_role": 1,
        "prompt_exceeds_max_length": 1,
    }
    assert counts.read == len(rows) == counts.kept + sum(counts.rejected.values())
    assert kept == [_conversation(1), long_answer]
    assert counts.truncated == 1


def test_launch_plans() -> None:
    cfg = dict(TRAINING)
    assert not needs_launcher(SFTJob("m", [], "o", "c", cfg, 0))
    assert needs_launcher(SFTJob("m", [], "o", "c", {**cfg, "deepspeed": "zero3"}, 0))
    eight = {**cfg, "gpus": 8, "effective_batch_size": 8 * cfg["per_device_batch_size"]}
    assert needs_launcher(SFTJob("m", [], "o", "c", eight, 0))
    cmd = torchrun_command(Path("/w/job.json"), 8)
    assert cmd[1:] == [
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=8",
        "--standalone",
        "-m",
        "hala.training.launch",
        "/w/job.json",
    ]


def _start(job: SFTJob, job_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    job_file.write_text(job.to_json())
    return subprocess.Popen(
        [sys.executable, "-m", "hala.training.launch", str(job_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_stopped_training_resumes_from_its_last_checkpoint(
    tiny_models: dict[str, Path], train_file: Path, tmp_path: Path
) -> None:
    """Kill a run after its first checkpoint; the restart continues there and matches an unbroken run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = _job(tiny_models, train_file, tmp_path, max_steps=12, save_steps=4)
    proc = _start(job, tmp_path / "job.json", env)
    deadline = time.monotonic() + 240
    while last_checkpoint(job.checkpoint_dir) is None:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = last_checkpoint(job.checkpoint_dir)
    assert first is not None and not (tmp_path / "out" / "model.safetensors").exists()

    proc = _start(job, tmp_path / "job.json", env)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    result = json.loads((tmp_path / "job.result.json").read_text())
    assert result["resumed_from"] == first
    assert result["global_step"] == 12

    unbroken = _job(tiny_models, train_file, tmp_path / "unbroken", max_steps=12, save_steps=4)
    (tmp_path / "unbroken").mkdir()
    proc = _start(unbroken, tmp_path / "unbroken" / "job.json", env)
    assert proc.wait(timeout=300) == 0
    from safetensors.torch import load_file

    resumed = load_file(tmp_path / "out" / "model.safetensors")
    straight = load_file(tmp_path / "unbroken" / "out" / "model.safetensors")
    for name, tensor in straight.items():
        assert (resumed[name] - tensor).abs().max() < 1e-5, name
