"""What every source module declares, and the common record all sources normalise to.

The common record (one row per input row, Arrow/Parquet):

| column   | type                                   | meaning                                            |
|----------|----------------------------------------|----------------------------------------------------|
| id       | string                                 | ``<source key>:<source id or content hash>``       |
| source   | string                                 | the source key (``openorca``, ``opus100``, ...)    |
| messages | list<struct<role: string, content: string>> | roles ``system`` / ``user`` / ``assistant`` |
| meta     | string (JSON object) or null           | source-specific fields (subject, choices, ...)     |

A parallel pair (OPUS-100) is a two-turn conversation: English as the user turn, its Arabic
translation as the assistant turn. An evaluation item (MMLU, MMMLU) is a single user turn whose
choices and answer are in ``meta``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from hala.sources.columnar import MESSAGES_TYPE
from hala.sources.schema import Kind

RECORD_SCHEMA = pa.schema(
    [("id", pa.string()), ("source", pa.string()), ("messages", MESSAGES_TYPE), ("meta", pa.string())]
)

SourceRole = Literal["instruction", "parallel", "eval"]


@dataclass
class Normalised:
    """A normaliser's output: records aligned 1:1 with the input rows, and why rows are set aside.

    ``codes[i]`` is 0 for a row to keep, else ``k`` with ``labels[k - 1] == (reason, column)``:
    the first quarantine reason that applies to the row and the column it concerns.
    """

    ids: pa.Array | pa.ChunkedArray
    messages: pa.Array | pa.ChunkedArray
    meta: pa.Array | pa.ChunkedArray | None
    codes: np.ndarray = field(init=False)
    labels: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.codes = np.zeros(len(self.ids), dtype=np.int16)

    def flag(self, mask: np.ndarray, reason: str, column: str) -> None:
        """Quarantine the rows in ``mask`` for ``reason`` unless an earlier reason already holds."""
        if not mask.any():
            return
        label = (reason, column)
        if label not in self.labels:
            self.labels.append(label)
        code = self.labels.index(label) + 1
        self.codes[(self.codes == 0) & mask] = code


@dataclass(frozen=True)
class SourceSpec:
    """A source dataset: where it lives, what its rows look like, how they become records."""

    key: str
    hub_id: str
    revision: str
    subset: str | None
    split: str
    role: SourceRole
    columns: dict[str, Kind]
    normalise: Callable[[pa.Table], Normalised]
    rules: str = ""
    extensions: tuple[str, ...] = ("parquet", "jsonl", "json", "csv")
    # True where ``normalise`` reads row positions (ids, positions within a subject): never sliced.
    whole_table: bool = False
    # Quarantine reasons that are the recipe's own selections (Tulu-3's multilingual subsets, Hermes-3's
    # code): counted like every reason, but not data lost, so the quarantine guard leaves them out.
    selections: frozenset[str] = frozenset()
