"""SFT data: chat examples read from the stages' parquet outputs, checked and counted.

Every example is a ``messages`` list (system/user/assistant turns). An example the trainer could not
learn from is rejected with a counted reason instead of being dropped silently later by TRL:
no assistant turn, an empty turn, an unknown role, or a prompt that fills ``max_length`` so no
assistant token would survive truncation. Read = kept + rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hala.errors import HalaError

ROLES = frozenset({"system", "user", "assistant"})


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


def _prompt_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Tokens before the first assistant answer (the part that never carries loss)."""
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
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
