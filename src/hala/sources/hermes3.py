"""NousResearch/Hermes-3-Dataset: ShareGPT-style conversations; every code-related sample is dropped.

The code rule (the report drops code from Hermes-3; this is our precise reading of it). A
conversation is code-related, and quarantined as ``code_related``, when any of its turns has

1. a fenced code block (a line starting with three backticks or three tildes), or
2. a Python traceback (``Traceback (most recent call last)``), or
3. a programming language, library or tool named as such (Python, JavaScript, TypeScript, C++, C#,
   Golang, SQL, Bash, PowerShell, PHP, Kotlin, HTML, CSS, regex, NumPy, pandas, Django, React,
   Node.js, JSON, YAML, API, source code, codebase, programming, coding), or
4. a request to write, debug, fix, refactor or implement code, a function, a script, a program,
   a class, a method or a query.

"code" alone does not count, so a zip code, a code of conduct or Morse code stay in; nor do
inline backticks around a word.

Layout: one JSONL file of ``{"conversations": [{"from", "value", "weight"?}, ...]}``; ``weight`` is
on some turns only, so datasets 5.2 types the turns ``List(Json)``, decoded by
:func:`hala.sources.schema.decode_json_lists`. Evidence, and how far it goes: the hub page of
https://huggingface.co/datasets/NousResearch/Hermes-3-Dataset (README.md at ac63e6c, the
``refs/pr/4`` revision: "Formats: json", "Size: 100K - 1M", license apache-2.0, and a card whose
metadata is empty, ``{}``: no ``configs`` and no ``dataset_info``, so datasets infers the split and
the features from the file itself); public loaders read ``load_dataset("NousResearch/Hermes-3-Dataset",
split="train")`` and walk ``example["conversations"]`` turn by turn with ``msg["from"]`` in
``system``/``human``/``gpt`` and ``msg["value"]`` (found by code search; the index names none of their
repositories), and one downloads the file as ``resolve/main/hermes-3-dataset.jsonl``. We found no
stored copy of the file's rows, so the ``weight`` key is not seen in Hermes-3 itself: it is what
issue 11 reports and what the family's OpenHermes-2.5 file carries (its features, as datasets wrote
them: ``conversations`` = list of ``{from: string, value: string, weight: float64}``;
ByteResearch/OpenHermes-2.5-Filtered-240405, ``train/dataset_info.json`` at cbf14601c2bb). Either way
the reader accepts both typings (a struct list, or ``List(Json)``).

Roles: ``system``, ``human``, ``gpt`` map to system/user/assistant; any other (a ``tool`` turn of a
function-calling sample, say) quarantines the conversation as ``unknown_role``, counted: our records
have no tool role, and relabelling a tool result as a user or assistant turn would train the model to
write tool output itself.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import (
    any_per_row,
    as_array,
    content_ids,
    conversation_text,
    map_conversation,
    missing_turns,
)
from hala.sources.schema import STRING, list_of, struct

ROLE_MAP = {"system": "system", "human": "user", "gpt": "assistant"}

CODE_PATTERN = (
    r"(?im)(^\s*(```|~~~))"
    r"|(Traceback \(most recent call last\))"
    r"|(\b(python|javascript|typescript|golang|sql|bash|powershell|php|kotlin|html|css|regex|numpy|pandas"
    r"|django|json|yaml|api|source code|codebase|programming|coding)\b)"
    r"|(\b(c\+\+|c#|node\.js|react\.js|reactjs)(\W|$))"
    r"|(\b(write|debug|fix|refactor|implement|optimi[sz]e)\b[^.?!\n]{0,40}"
    r"\b(code|function|script|program|class|method|query|snippet)\b)"
)


def code_related(conversations: pa.Array) -> pa.Array:
    """Per conversation, whether any turn matches :data:`CODE_PATTERN`."""
    conversations = as_array(conversations)
    items = pc.list_flatten(conversations)
    parents = pc.list_parent_indices(conversations).to_numpy()
    hits = pc.match_substring_regex(as_array(items.field("value")), CODE_PATTERN)
    flags = pc.fill_null(hits, False).to_numpy(zero_copy_only=False)
    return pa.array(any_per_row(flags, parents, len(conversations)))


def normalise(table: pa.Table) -> Normalised:
    """Map ``from``/``value`` turns to roles; quarantine code-related conversations."""
    conversations = table.column("conversations")
    messages, null_row, unknown_role, blank_text = map_conversation(conversations, "from", "value", ROLE_MAP)
    ids = content_ids("hermes3", [conversation_text(messages)])
    out = Normalised(ids=ids, messages=messages, meta=None)
    out.flag(null_row, "null_field", "conversations")
    out.flag(unknown_role, "unknown_role", "conversations.from")
    out.flag(blank_text, "empty_text", "conversations.value")
    out.flag(missing_turns(messages), "missing_turn", "conversations")
    out.flag(code_related(conversations).to_numpy(zero_copy_only=False), "code_related", "conversations")
    return out


SPEC = SourceSpec(
    key="hermes3",
    hub_id="NousResearch/Hermes-3-Dataset",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={"conversations": list_of(struct(**{"from": STRING, "value": STRING}))},
    normalise=normalise,
    rules="code-related conversations quarantined (see CODE_PATTERN)",
    selections=frozenset({"code_related"}),
)
