"""SFT data: chat examples read from the stages' parquet outputs, checked and counted.

Every example is a ``messages`` list (system/user/assistant turns). An example the trainer could not
learn from is rejected with a counted reason instead of being dropped silently later by TRL:
no assistant turn, an empty turn, an unknown role, or a prompt that fills ``max_length`` so no
assistant token would survive truncation. Read = kept + rejected.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hala.errors import HalaError

ROLES = frozenset({"system", "user", "assistant"})

# sha256 of each chat template TRL 1.16 swaps for a training copy (``trl/chat_templates/<name>.jinja``
# beside ``<name>_training.jinja``; ``get_training_chat_template`` matches them byte for byte). Kept here so
# preflight, which runs in the data image without TRL, can tell before any GPU is requested whether SFT
# will be able to mask a model's template; tests/test_sft.py holds it to the installed TRL.
TRL_RECOGNISED_TEMPLATES: dict[str, str] = {
    "90c33aee14aa2a226127516d48ee9184c9b90745d4a04c484621ec2e82fb712c": "cohere",
    "2147c474f41b522b7296f74692b9f31e45f49a31465960576a9d321339c5915a": "cohere2",
    "56a1447ad31926fdc21fb07e56e5642bd9c850c4f52d8c8af7bbe5f079a84f5f": "deepseek_r1_distill",
    "563b1ce7d61d50a9b4c7439a912a1116f095b712df5b5e4d3e1116049874eb64": "deepseekv3",
    "9aeb7eac68ad87bba7567e9d4597ff203e5609f1b427d9e823437d0142cc61bf": "diffusion_gemma",
    "ecd6ae513fe103f0eb62e8ab5bfa8d0fe45c1074fa398b089c93a7e70c15cfd6": "gemma",
    "7de1c58e208eda46e9c7f86397df37ec49883aeece39fb961e0a6b24088dd3c4": "gemma3",
    "44f815868bf02fa458dd2f741a338046f4bf45f398eb6d067766726b9d96cce3": "glm4moe",
    "a4c9919cbbd4acdd51ccffe22da049264b1b73e59055fa58811a99efbd7c8146": "gptoss",
    "0d7e56ca41705b79932de707b22bc855c3cfcefae62f1ac5e458560654883d2e": "idefics3",
    "cef187400d62a59507aab3a642ea9a8d2a2ef263562bc3430560e116945273cf": "lfm2",
    "5504d163d879bfb6fd4135b7fa3d56768b2e69dd718338f7b146750289f46ab0": "lfm2_v2",
    "ba03a121d097859c7b5b9cd03af99aafe95275210d2876f642ad9929a150f122": "llama3",
    "2c17243a977fd0643fb549a509a8e2684f45517df0f9f608d5893b719f16569f": "llava_next",
    "cfc67e5f349f37690dfd31ed1f18bc4442a9dd32fe39a648f993cb4eb3cae678": "muse_glimmer",
    "58933db77d3099b4f78c55a38347a72e1ea05b97d6bd8f38775303dc0194e0a9": "nemotron_3_5_lightning",
    "ab7813c3abdd9cb655905a410728b26c7884eca45ddfab8d9f931553485a7862": "nemotron_3_nano",
    "575fb74f54ed264df9047d0ecce3c98938aae953fb4f50356675706264cbb68a": "nemotron_3_super",
    "82753bef5cedc4932c1ed509b5c9a12be680fd86d1adb65bc3f7398d11c8eebc": "nemotron_3_ultra",
    "dcaee66df77bfbb789ec541fe713218da30225a526f1db97138fc39ee6dc56aa": "phi3",
    "78d976a442bcde2f0be15aafbb8e3050e1104f86732266f68403251b89982a90": "phi3_5",
    "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f": "qwen2_5",
    "a0bc6f6fc7a29a80017a433e8f03a1cc1236e838a944a2d034295a60c4f2fddb": "qwen2_5_vl",
    "a55ee1b1660128b7098723e0abcd92caa0788061051c62d51cbe87d9cf1974d8": "qwen3",
    "273d8e0e683b885071fb17e08d71e5f2a5ddfb5309756181681de4f5a1822d80": "qwen3_5_nothink",
    "a4aee8afcf2e0711942cf848899be66016f8d14a889ff9ede07bca099c28f715": "qwen3_5_think",
    "e84f32a23fdda27689f868aa4a1a5621f41133e51a48d7f3efcbea2839574259": "qwen3_6",
    "c3cf9e34abf4f9e36c2d72165aa9c132d3e2a725b6c2586aaa3a8af9d7a81041": "qwen3_8",
    "64f85b198065d0fba2a81f37e10ed68161ce2c19a754c7100e67e0ca2ee9c326": "qwen3_instruct_2507",
    "3636d0f0bd6bef02654cdffdc447b79cb2cef8ab02cc75267345946291a489e4": "qwen3_vl",
    "830005085ddd94cec605b6e21b885b28ffad6e3f82ee6a212c523533e8f04f01": "smolvlm",
}
GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")  # TRL's has_generation_markers pattern

# Marked training copies of templates TRL cannot mask, chosen per model by a preset's
# ``training.training_chat_template``; SFT renders with the copy, the saved model keeps its own template.
# QCRI/Fanar-1-9B-Instruct (the 9B student's base): its template (tokenizer_config.json at revision
# d30938d0efb1fd251727ee96df6987802ff84662, https://huggingface.co/api/models/QCRI/Fanar-1-9B-Instruct,
# config.tokenizer_config.chat_template; what could be read of it is in
# fixtures/chat_templates/fanar-1-9b-instruct.json) is Gemma-2's turn format with its own system and
# thinking handling, starts ``{{ '<bos>' }}`` where TRL's gemma.jinja starts ``{{ bos_token }}``, and has no
# ``{% generation %}`` markers: TRL 1.16 neither recognises nor masks it, so the 9B trains with
# ``fanar1_training.jinja``.
TRAINING_TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_FIELD = "training.training_chat_template"


def preset_training_template(name: str) -> str:
    """The text of ``hala/training/templates/<name>``; an error naming the preset field otherwise."""
    path = TRAINING_TEMPLATES / name
    shipped = sorted(p.name for p in TRAINING_TEMPLATES.glob("*.jinja"))
    if Path(name).name != name or not path.is_file():
        raise HalaError(
            f"{TEMPLATE_FIELD} {name!r} is not a template in {TRAINING_TEMPLATES}; choose one of {shipped}"
        )
    text = path.read_text(encoding="utf-8")
    if not GENERATION_MARKER.search(text):
        raise HalaError(f"{TEMPLATE_FIELD} {name!r} has no {{% generation %}} markers, so it masks nothing")
    return text


def assistant_mask_source(template: str, training_template: str | None = None) -> str | None:
    """How assistant-only loss will mask ``template`` (TRL-free), or None when it cannot.

    In order: the preset's training copy, the template's own markers, TRL's copy of a template it knows.
    """
    if training_template is not None:
        preset_training_template(training_template)
        return f"the preset's {TEMPLATE_FIELD} {training_template}"
    if GENERATION_MARKER.search(template):
        return "its own {% generation %} markers"
    name = TRL_RECOGNISED_TEMPLATES.get(hashlib.sha256(template.encode("utf-8")).hexdigest())
    return f"TRL's {name}_training.jinja" if name else None


def unmaskable_fix(model: str) -> str:
    """What to do about a base model whose chat template assistant-only loss cannot mask."""
    shipped = ", ".join(sorted(p.name for p in TRAINING_TEMPLATES.glob("*.jinja")))
    return (
        f"set {TEMPLATE_FIELD} of the preset's training for {model} to a marked copy of its template in "
        f"hala/training/templates ({shipped}; QCRI/Fanar-1-9B-Instruct: fanar1_training.jinja), or pin the "
        "model's `revision` to one whose chat template wraps each assistant turn, its end-of-turn token "
        "included, in {% generation %}...{% endgeneration %}"
    )


@dataclass
class SFTDataCounts:
    """Examples read, kept, rejected by reason, and kept examples longer than max_length (truncated)."""

    read: int = 0
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    truncated: int = 0

    def reject(self, reason: str) -> None:
        """Count one rejected example."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def parquet_files(dirs: Sequence[str | Path], names: Sequence[str] = ()) -> list[Path]:
    """The parquet files under ``dirs`` (only files called one of ``names`` when given), sorted."""
    files: list[Path] = []
    for d in dirs:
        found = sorted(Path(d).rglob("*.parquet"))
        files += [f for f in found if not names or f.name in names]
    if not files:
        raise HalaError(
            f"no training data: no parquet files {list(names) or ''} under {[str(d) for d in dirs]}"
        )
    return files


def read_messages(files: Sequence[Path]) -> list[list[dict[str, str]]]:
    """The ``messages`` column of each file, in file order; a file without one is named in the error."""
    conversations: list[list[dict[str, str]]] = []
    for path in files:
        table = pq.read_table(path)
        if "messages" not in table.column_names:
            raise HalaError(
                f"{path}: no 'messages' column (columns: {table.column_names}); "
                "SFT reads the bilingual set or the translated corpus"
            )
        conversations += table.column("messages").to_pylist()
    return conversations


def _problem(messages: list[dict[str, str]] | None) -> str | None:
    if not messages:
        return "no_messages"
    if any(m.get("role") not in ROLES for m in messages):
        return "unknown_role"
    if any(not (m.get("content") or "").strip() for m in messages):
        return "empty_turn"
    if not any(m["role"] == "assistant" for m in messages):
        return "no_assistant_turn"
    return None


def training_chat_template(tokenizer: Any, model: str, configured: str | None = None) -> str | None:
    """The template assistant-only loss masks with, found the way TRL's ``SFTTrainer`` finds it.

    ``configured`` (the preset's ``training.training_chat_template``) wins: its text, from
    ``hala/training/templates``. Otherwise None when the model's own template has ``{% generation %}``
    markers; TRL's training copy when TRL recognises the template (an exact match against
    ``trl/chat_templates/*.jinja``: LFM2 gets ``lfm2_training.jinja``). Any other template would stop
    ``SFTTrainer`` with a ValueError after the GPUs are allocated; this raises a :class:`HalaError`
    naming ``model`` and the fix instead.
    """
    import trl
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if configured is not None:
        return preset_training_template(configured)
    template = tokenizer.chat_template
    if not template:
        raise HalaError(
            f"{model}: the tokenizer has no chat template, so SFT cannot tell assistant tokens apart; "
            "use an instruct/chat model or a revision that ships one"
        )
    if has_generation_markers(template):
        return None
    try:
        return get_training_chat_template(tokenizer)
    except ValueError as exc:
        raise HalaError(
            f"{model}: its chat template has no {{% generation %}} markers and is not one TRL "
            f"{trl.__version__} recognises (TRL matches templates byte for byte against "
            "trl/chat_templates/*.jinja), so assistant-only loss cannot mask it. "
            f"Fix: {unmaskable_fix(model)}"
        ) from exc


def _prompt_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Tokens before the first assistant answer (the part that never carries loss)."""
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    if first == 0:  # nothing before the answer (LFM2's template reads messages[0], so render none)
        return 0
    ids = tokenizer.apply_chat_template(
        messages[:first], tokenize=True, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    return len(ids)


def _full_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


def _turn_overhead(tokenizer: Any) -> int:
    """An upper bound on the template's own tokens per turn (role markers, end-of-turn)."""
    pair = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "x"}]
    return _full_tokens(tokenizer, pair)


def check_examples(
    conversations: Sequence[list[dict[str, str]] | None], tokenizer: Any, max_length: int
) -> tuple[list[list[dict[str, str]]], SFTDataCounts]:
    """Keep the examples SFT can learn from; count the others by reason and the truncated ones.

    Byte-level tokenizers never make more tokens than UTF-8 bytes, so an example whose bytes plus
    the template's overhead fit ``max_length`` is not tokenized here (most of them, cheaply).
    """
    counts = SFTDataCounts(read=len(conversations))
    kept: list[list[dict[str, str]]] = []
    overhead = _turn_overhead(tokenizer)
    for messages in conversations:
        problem = _problem(messages)
        if problem is not None or messages is None:
            counts.reject(problem or "no_messages")
            continue
        bound = sum(len(m["content"].encode()) + overhead for m in messages)
        if bound > max_length:
            if _prompt_tokens(tokenizer, messages) >= max_length:
                counts.reject("prompt_exceeds_max_length")
                continue
            if _full_tokens(tokenizer, messages) > max_length:
                counts.truncated += 1
        kept.append([{"role": m["role"], "content": m["content"]} for m in messages])
    counts.kept = len(kept)
    return kept, counts


def to_table(conversations: Sequence[list[dict[str, str]]]) -> pa.Table:
    """A one-column ``messages`` table (what TRL's conversational format reads)."""
    return pa.table({"messages": list(conversations)})
