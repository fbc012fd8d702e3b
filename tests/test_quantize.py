"""hala.quantize on the tiny LFM2 teacher (CPU): FP8-dynamic checkpoint, its files, reload, and the gate."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hala.errors import HalaError
from hala.fp8_check import (
    QuantizationGateError,
    TimedTranslations,
    ValidationReport,
    dir_size_bytes,
    validate_fp8,
)
from hala.quantize import QuantizationError, quantize_fp8
from hala.translate.engines import Generation

# Every nn.Linear of the tiny teacher except lm_head: attention q/k/v/out, conv in/out, MLP w1/w2/w3.
QUANTISED_SUFFIXES = ("q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3")

SOURCES = ["The river is long.", "Good morning, my friend.", "The book is on the table."]
REFERENCES = ["النهر طويل.", "صباح الخير يا صديقي.", "الكتاب على الطاولة."]
DEGRADED = ["نهر.", "صباح.", "كتاب."]


@pytest.fixture(scope="module")
def fp8_teacher(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quantize_fp8(tiny_models["teacher"], tmp_path_factory.mktemp("fp8") / "teacher-fp8")


def _tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: (str(f.get_slice(k).get_dtype()), tuple(f.get_slice(k).get_shape())) for k in f.keys()}  # noqa: SIM118


def test_config_is_compressed_tensors_fp8_dynamic(fp8_teacher: Path) -> None:
    config = json.loads((fp8_teacher / "config.json").read_text())
    assert config["model_type"] == "lfm2"
    quant = config["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors"
    assert quant["format"] == "float-quantized"
    assert quant["quantization_status"] == "compressed"
    assert quant["ignore"] == ["lm_head"]
    (group,) = quant["config_groups"].values()
    assert group["targets"] == ["Linear"]
    weights, acts = group["weights"], group["input_activations"]
    assert (weights["num_bits"], weights["type"], weights["strategy"]) == (8, "float", "channel")
    assert weights["dynamic"] is False and weights["symmetric"] is True
    assert (acts["num_bits"], acts["type"], acts["strategy"]) == (8, "float", "token")
    assert acts["dynamic"] is True
    assert group["output_activations"] is None


def test_folder_has_recipe_tokenizer_and_chat_template(fp8_teacher: Path) -> None:
    import yaml

    names = {p.name for p in fp8_teacher.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "recipe.yaml",
        "tokenizer.json",
        "chat_template.jinja",
    } <= names
    recipe = yaml.safe_load((fp8_teacher / "recipe.yaml").read_text())
    (stage,) = recipe.values()
    (modifiers,) = stage.values()
    modifier = modifiers["QuantizationModifier"]
    assert modifier["scheme"] == "FP8_DYNAMIC"
    assert modifier["targets"] == ["Linear"] and modifier["ignore"] == ["lm_head"]


def test_the_checkpoint_declares_channel_weights_and_dynamic_per_token_activations(fp8_teacher: Path) -> None:
    """What FP8_DYNAMIC is, from compressed-tensors itself (paper.yaml's quant note relies on it)."""
    from compressed_tensors.quantization.quant_scheme import PRESET_SCHEMES

    preset = PRESET_SCHEMES["FP8_DYNAMIC"]
    assert (preset["weights"].strategy, preset["weights"].dynamic) == ("channel", False)
    assert (preset["input_activations"].strategy, preset["input_activations"].dynamic) == ("token", True)
    config = json.loads((fp8_teacher / "config.json").read_text())["quantization_config"]
    (group,) = config["config_groups"].values()
    assert (group["weights"]["strategy"], group["weights"]["num_bits"], group["weights"]["type"]) == (
        "channel",
        8,
        "float",
    )
    assert group["input_activations"]["strategy"] == "token" and group["input_activations"]["dynamic"] is True


def test_recipe_is_written_even_when_llm_compressor_skips_it(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from llmcompressor.transformers.compression import compressed_tensors_utils

    monkeypatch.setattr(compressed_tensors_utils, "update_and_save_recipe", lambda *args: None)
    out = quantize_fp8(tiny_models["teacher"], tmp_path / "fp8", ignore=["lm_head"])
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert "FP8_DYNAMIC" in json.dumps(recipe)


def test_linear_weights_are_fp8_with_channel_scales_and_the_rest_is_untouched(
    tiny_models: dict[str, Path], fp8_teacher: Path
) -> None:
    import torch

    # quantize_fp8 loads in float32 on a CPU machine and in bfloat16 where CUDA is present; the tensors
    # it leaves alone and the scales keep that dtype.
    float_dtype = "BF16" if torch.cuda.is_available() else "F32"
    source = _tensors(tiny_models["teacher"] / "model.safetensors")
    fp8 = _tensors(fp8_teacher / "model.safetensors")
    quantised = {k for k in source if k.removesuffix(".weight").endswith(QUANTISED_SUFFIXES)}
    assert len(quantised) == 24  # 2 conv layers x 5 Linear + 2 attention layers x 7 Linear
    for name in quantised:
        out_features = source[name][1][0]
        assert fp8[name] == ("F8_E4M3", source[name][1])
        assert fp8[name.replace(".weight", ".weight_scale")] == (float_dtype, (out_features, 1))
    # The embedding (tied to the ignored lm_head), norms and the short-conv Conv1d are not quantised.
    untouched = set(source) - quantised
    assert {"model.embed_tokens.weight", "model.layers.0.conv.conv.weight"} <= untouched
    for name in untouched:
        assert fp8[name] == (float_dtype, source[name][1]), name
    assert set(fp8) == untouched | quantised | {k + "_scale" for k in quantised}
    assert not any(k.startswith("lm_head") for k in fp8)  # tied: saved once, as the embedding


def test_fp8_weights_are_smaller_on_disk(tiny_models: dict[str, Path], fp8_teacher: Path) -> None:
    source = (tiny_models["teacher"] / "model.safetensors").stat().st_size
    fp8 = (fp8_teacher / "model.safetensors").stat().st_size
    # Linear weights drop from 4 bytes to 1 (+4 bytes of scale per output channel), but in a model this
    # small the float32 embedding (1024 x 96 = 393 KB, tied to the ignored lm_head) is a quarter of the
    # source, so the file shrinks to ~46 %, not 25 %: measured 1,509,408 -> 693,640 bytes on CPU (float32
    # load). On a GPU machine the model loads in bfloat16, so embedding and scales halve too (~488 KB).
    assert fp8 < 0.5 * source
    assert dir_size_bytes(fp8_teacher) < dir_size_bytes(tiny_models["teacher"])


def test_transformers_reloads_and_generates_on_cpu(tiny_models: dict[str, Path], fp8_teacher: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fp8_teacher)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_models["teacher"]).chat_template
    model = AutoModelForCausalLM.from_pretrained(fp8_teacher)
    source = AutoModelForCausalLM.from_pretrained(tiny_models["teacher"])
    batch = tokenizer(["Translate from English to Arabic: hello", "hi"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
        logits, reference = model(**batch).logits.float(), source(**batch).logits
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)
    # FP8 is an approximation of the source model, not a different model.
    assert torch.isfinite(logits).all()
    cosine = torch.nn.functional.cosine_similarity(logits.flatten(), reference.flatten(), dim=0)
    assert cosine > 0.99


def test_refuses_bad_folders_before_loading_anything(
    tiny_models: dict[str, Path], fp8_teacher: Path, tmp_path: Path
) -> None:
    teacher = tiny_models["teacher"]
    with pytest.raises(QuantizationError, match="already quantised"):
        quantize_fp8(fp8_teacher, tmp_path / "again")
    with pytest.raises(QuantizationError, match="not empty"):
        quantize_fp8(teacher, fp8_teacher)
    with pytest.raises(QuantizationError, match="is the source folder"):
        quantize_fp8(teacher, teacher)
    with pytest.raises(QuantizationError, match=r"no config\.json"):
        quantize_fp8(tmp_path, tmp_path / "out")


def _fake_translate(
    source_dir: Path,
    source_outputs: list[str],
    fp8_outputs: list[str],
    timing: dict[str, tuple[int, float]] | None = None,
) -> Callable[[Path, Sequence[str]], TimedTranslations]:
    """A stand-in for the stage's timed translate: canned outputs (and tokens, seconds) per model."""
    timing = timing or {"source": (30, 1.0), "fp8": (30, 0.5)}

    def translate(model_dir: Path, texts: Sequence[str]) -> TimedTranslations:
        assert list(texts) == SOURCES
        which = "source" if model_dir == source_dir else "fp8"
        tokens, seconds = timing[which]
        return TimedTranslations(list(source_outputs if which == "source" else fp8_outputs), tokens, seconds)

    return translate


def test_gate_rejects_a_degraded_fp8_model(tiny_models: dict[str, Path], fp8_teacher: Path) -> None:
    """The translate callable is a fake (the real engine lives elsewhere): reference vs degraded text."""
    source_dir = tiny_models["teacher"]
    translate = _fake_translate(source_dir, REFERENCES, DEGRADED)
    with pytest.raises(QuantizationGateError) as caught:
        validate_fp8(source_dir, fp8_teacher, SOURCES, REFERENCES, translate, max_chrf_drop=1.0)
    report = caught.value.report
    message = str(caught.value)
    assert report.chrf_source == pytest.approx(100.0)
    assert report.chrf_fp8 < 99.0
    for number in (report.chrf_source, report.chrf_fp8, -report.chrf_delta, 1.0):
        assert f"{number:.2f}" in message
    assert "quant section" in message and "keep the source model" in message
    assert isinstance(caught.value, HalaError)


def test_gate_passes_identical_outputs(tiny_models: dict[str, Path], fp8_teacher: Path) -> None:
    """The translate callable is a fake (the real engine lives elsewhere): both models say the same."""
    source_dir = tiny_models["teacher"]
    almost = [*REFERENCES[:2], "الكتاب فوق الطاولة."]
    translate = _fake_translate(source_dir, almost, almost)
    report = validate_fp8(source_dir, fp8_teacher, SOURCES, REFERENCES, translate)
    assert isinstance(report, ValidationReport)
    assert report.chrf_delta == 0 and report.bleu_delta == 0
    assert report.chrf_source == report.chrf_fp8 < 100
    assert report.n_samples == 3
    assert report.size_fp8_bytes == dir_size_bytes(fp8_teacher) < report.size_source_bytes
    metrics = report.to_metrics()
    assert all(isinstance(v, float) for v in metrics.values())
    # Output tokens per second of warm generation; the speed-up is FP8's over the source's.
    assert report.tokens_per_s_source == 30.0 and report.tokens_per_s_fp8 == 60.0
    assert report.speedup == pytest.approx(2.0) and metrics["speedup"] == pytest.approx(2.0)
    assert metrics["chrf_delta"] == 0.0 and metrics["size_source_bytes"] == float(report.size_source_bytes)


def test_gate_checks_its_inputs(tiny_models: dict[str, Path], fp8_teacher: Path) -> None:
    source_dir = tiny_models["teacher"]
    with pytest.raises(ValueError, match="one reference per source"):
        validate_fp8(source_dir, fp8_teacher, SOURCES, REFERENCES[:2], _fake_translate(source_dir, [], []))
    with pytest.raises(HalaError, match="returned 2 texts for 3 sources"):
        validate_fp8(
            source_dir, fp8_teacher, SOURCES, REFERENCES, _fake_translate(source_dir, DEGRADED[:2], [])
        )


def test_gate_refuses_a_translate_with_no_time(tiny_models: dict[str, Path], fp8_teacher: Path) -> None:
    source_dir = tiny_models["teacher"]
    timing = {"source": (30, 0.0), "fp8": (30, 0.5)}
    translate = _fake_translate(source_dir, REFERENCES, REFERENCES, timing)
    with pytest.raises(HalaError, match="positive wall time"):
        validate_fp8(source_dir, fp8_teacher, SOURCES, REFERENCES, translate)


class _SlowStartEngine:
    """An engine whose load and first call are slow and whose later calls are fast (tests only)."""

    max_model_len = 512
    calls = 0

    def __init__(self) -> None:
        time.sleep(0.4)  # engine start

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def chat(self, conversations: Sequence[list[dict[str, str]]], settings: object) -> list[Generation]:
        _SlowStartEngine.calls += 1
        if _SlowStartEngine.calls == 1:
            time.sleep(0.4)  # first call: kernel selection, CUDA graphs
        return [Generation("النص العربي هنا.", "stop", 5, 4) for _ in conversations]


def test_stage_times_warm_generation_only_and_counts_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hala.config import load_preset
    from hala.stages import validate_fp8
    from hala.translate import factory

    monkeypatch.setattr(factory, "make_engine", lambda model_dir, cfg: _SlowStartEngine())
    settings = validate_fp8.settings(load_preset("tiny"))
    done = validate_fp8.translate_with_model(settings, Path("teacher"), SOURCES)
    assert done.texts == ["النص العربي هنا."] * 3
    assert done.output_tokens == 3 * 4  # the warm-up call is not counted
    assert 0 < done.seconds < 0.3  # neither the engine's start nor its first call is timed


def test_dir_size_counts_every_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "b.json").write_bytes(b"y" * 5)
    assert dir_size_bytes(tmp_path) == 15
    with pytest.raises(FileNotFoundError, match="not a folder"):
        dir_size_bytes(tmp_path / "missing")
