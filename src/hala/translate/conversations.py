"""Records in, Arabic records out: every turn of every conversation, roles and order kept.

A record whose turn cannot be translated is quarantined whole (a half-translated conversation is no
training example), with the reason and the turn it failed on.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from hala.sources.columnar import MESSAGES_TYPE
from hala.translate.engines import Engine
from hala.translate.runner import TranslateSettings, translate_texts

TRANSLATED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("messages", MESSAGES_TYPE),
        ("messages_en", MESSAGES_TYPE),
        ("meta", pa.string()),
    ]
)
TRANSLATION_QUARANTINE_SCHEMA = pa.schema(
    [("id", pa.string()), ("reason", pa.string()), ("column", pa.string())]
)
TEACHER_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("system_en", pa.string()),
        ("system_ar", pa.string()),
        ("instr_en", pa.string()),
        ("instr_ar", pa.string()),
        ("resp_en", pa.string()),
        ("resp_ar", pa.string()),
    ]
)


def translate_records(
    engine: Engine, records: pa.Table, settings: TranslateSettings
) -> tuple[pa.Table, pa.Table]:
    """Translate the messages of common records; returns ``(translated, quarantine)``."""
    rows = records.to_pylist()
    texts = [m["content"] for row in rows for m in row["messages"]]
    results = translate_texts(engine, texts, settings)
    translated: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    position = 0
    for row in rows:
        mine = results[position : position + len(row["messages"])]
        position += len(row["messages"])
        failed = next((i for i, r in enumerate(mine) if r.text is None), None)
        if failed is not None:
            quarantine.append(
                {"id": row["id"], "reason": mine[failed].reason, "column": f"messages[{failed}].content"}
            )
            continue
        arabic = [{"role": m["role"], "content": r.text} for m, r in zip(row["messages"], mine, strict=True)]
        translated.append(
            {
                "id": row["id"],
                "source": row["source"],
                "messages": arabic,
                "messages_en": row["messages"],
                "meta": row["meta"],
            }
        )
    return (
        pa.Table.from_pylist(translated, schema=TRANSLATED_SCHEMA),
        pa.Table.from_pylist(quarantine, schema=TRANSLATION_QUARANTINE_SCHEMA),
    )


def _turn(messages: list[dict[str, str]], role: str) -> str:
    return next((m["content"] for m in messages if m["role"] == role), "")


def teacher_tuples(translated: pa.Table) -> pa.Table:
    """OpenOrca translations as the report's tuples: instruction and response in both languages."""
    rows = []
    for row in translated.to_pylist():
        en, ar = row["messages_en"], row["messages"]
        rows.append(
            {
                "id": row["id"],
                "system_en": _turn(en, "system"),
                "system_ar": _turn(ar, "system"),
                "instr_en": _turn(en, "user"),
                "instr_ar": _turn(ar, "user"),
                "resp_en": _turn(en, "assistant"),
                "resp_ar": _turn(ar, "assistant"),
            }
        )
    return pa.Table.from_pylist(rows, schema=TEACHER_SCHEMA)
