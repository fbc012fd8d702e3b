"""Vectorised Arrow helpers the source normalisers share: blank checks, turn building, role mapping.

Everything here works on whole columns (no per-row Python), which is what lets the data stage
normalise and shard a million rows in a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

ROLES = ("system", "user", "assistant")
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)


def as_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous array from a (possibly chunked) column, strings as 32-bit-offset ``string``."""
    if isinstance(column, pa.ChunkedArray):
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    else:
        array = column
    if pa.types.is_large_string(array.type) or pa.types.is_null(array.type):
        array = array.cast(pa.string())
    return array


# Text that shows nothing: white space (every character Python's ``str.strip`` removes: RE2's ``\s``
# lacks the vertical tab, the information separators U+001C-U+001F and NEL U+0085), format characters
# (zero-width space and joiners, bidi marks and isolates, BOM, soft hyphen: Unicode category Cf),
# combining marks alone (Arabic harakat and every other diacritic: Mn) and the Arabic tatweel (U+0640,
# a stretch of the baseline). The match stops at the first visible character, so long texts cost little.
NOTHING_VISIBLE = r"^[\s\x0b\x1c-\x1f\x85\p{Z}\p{Cf}\p{Mn}\x{0640}]*$"


def blank(array: pa.Array) -> np.ndarray:
    """True where a string is null, empty, or shows nothing (:data:`NOTHING_VISIBLE`)."""
    empty = pc.match_substring_regex(as_array(array), NOTHING_VISIBLE)
    return np.asarray(pc.fill_null(empty, True).to_numpy(zero_copy_only=False), dtype=bool)


def any_per_row(flags: np.ndarray, parents: np.ndarray, num_rows: int) -> np.ndarray:
    """Per row, whether any of its list items (``parents`` maps item -> row) is flagged."""
    out = np.zeros(num_rows, dtype=bool)
    out[parents[flags]] = True
    return out


def build_messages(turns: Sequence[tuple[str, pa.Array, np.ndarray | None]], num_rows: int) -> pa.ListArray:
    """Interleave flat text columns into one ``messages`` list per row.

    ``turns`` are ``(role, texts, present)``; a turn whose ``present`` flag is False for a row is
    left out of that row (an empty system prompt, say). Turn order within a row is the order given.
    """
    k = len(turns)
    present = np.ones((num_rows, k), dtype=bool)
    for j, (_, _, mask) in enumerate(turns):
        if mask is not None:
            present[:, j] = mask
    counts = present.sum(axis=1)
    offsets = np.zeros(num_rows + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    rows, cols = np.nonzero(present)  # row-major: grouped by row, turns in order
    stacked = pa.concat_arrays([as_array(texts) for _, texts, _ in turns])
    content = stacked.take(pa.array(cols.astype(np.int64) * num_rows + rows))
    role_names = pa.array([role for role, _, _ in turns], pa.string())
    roles = pa.DictionaryArray.from_arrays(pa.array(cols.astype(np.int32)), role_names).cast(pa.string())
    values = pa.StructArray.from_arrays([roles, content], fields=list(MESSAGE_TYPE))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def map_conversation(
    conversations: pa.Array, role_field: str, text_field: str, role_map: dict[str, str]
) -> tuple[pa.ListArray, np.ndarray, np.ndarray, np.ndarray]:
    """Rename a list-of-struct conversation column into ``messages``.

    Returns the messages, and per row: null conversation, unknown role, blank text.
    A null conversation becomes an empty list so the output stays one row per input row.
    """
    conversations = as_array(conversations)
    num_rows = len(conversations)
    null_row = np.asarray(conversations.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    conversations = pc.fill_null(conversations, pa.scalar([], conversations.type))
    items = pc.list_flatten(conversations)
    parents = np.asarray(pc.list_parent_indices(conversations).to_numpy(), dtype=np.int64)
    raw_roles = as_array(items.field(role_field))
    texts = as_array(items.field(text_field))
    known = list(role_map)
    index = pc.index_in(raw_roles, value_set=pa.array(known, pa.string()))
    unknown_item = np.asarray(index.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    roles = pa.array([role_map[r] for r in known], pa.string()).take(pc.fill_null(index, 0))
    values = pa.StructArray.from_arrays([roles, texts], fields=list(MESSAGE_TYPE))
    offsets = pc.subtract(conversations.offsets, conversations.offsets[0])
    messages = pa.ListArray.from_arrays(offsets, values)
    unknown_role = any_per_row(unknown_item, parents, num_rows)
    blank_text = any_per_row(blank(texts), parents, num_rows)
    return messages, null_row, unknown_role, blank_text


def missing_turns(messages: pa.ListArray) -> np.ndarray:
    """Per row, True when there is no user turn or no assistant turn."""
    num_rows = len(messages)
    parents = np.asarray(pc.list_parent_indices(messages).to_numpy(), dtype=np.int64)
    roles = pc.list_flatten(messages).field("role")
    has = {}
    for role in ("user", "assistant"):
        flags = np.asarray(pc.equal(roles, role).to_numpy(zero_copy_only=False), dtype=bool)
        has[role] = any_per_row(flags, parents, num_rows)
    return ~(has["user"] & has["assistant"])


def conversation_text(messages: pa.ListArray) -> pa.Array:
    """One string per conversation: its turns as ``role<US>content`` joined by NUL (for hashing)."""
    items = pc.list_flatten(messages)
    turns = pc.binary_join_element_wise(items.field("role"), items.field("content"), "\x1f")
    offsets = pc.subtract(messages.offsets, messages.offsets[0])
    return pc.binary_join(pa.ListArray.from_arrays(offsets, turns), "\x00")


def prefixed_ids(prefix: str, values: pa.Array) -> pa.Array:
    """``prefix:value`` for every value (integers are formatted in base 10)."""
    as_text = as_array(values) if not pa.types.is_integer(values.type) else pc.cast(values, pa.string())
    return pc.binary_join_element_wise(prefix, as_text, ":")


def content_ids(prefix: str, columns: Sequence[pa.Array]) -> pa.Array:
    """Content-addressed ids for sources without one: ``prefix:`` + xxh3-128 of the texts.

    Equal content gives equal ids, so exact duplicates are caught by the duplicate-id check.
    """
    texts = [as_array(c).to_pylist() for c in columns]
    digests = [
        f"{prefix}:{xxhash.xxh3_128_hexdigest(chr(0).join(t or '' for t in row))}"
        for row in zip(*texts, strict=True)
    ]
    return pa.array(digests, pa.string())


def json_meta(columns: dict[str, pa.Array]) -> pa.Array:
    """Per-row JSON objects holding source-specific fields (subject, choices, ...)."""
    names = list(columns)
    values = [
        as_array(c).to_pylist() if isinstance(c, pa.Array | pa.ChunkedArray) else c for c in columns.values()
    ]
    rows = (
        json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False)
        for row in zip(*values, strict=True)
    )
    return pa.array(list(rows), pa.string())


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: spreads every input bit over the low bits."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def stable_hash(texts: pa.Array, block: int = 1 << 16) -> np.ndarray:
    """A 64-bit hash of each string's UTF-8 bytes, the same on every run and machine.

    FNV-1a over the bytes, then MurmurHash3's finaliser, computed column-wise over a padded byte
    matrix so it needs no per-row Python. Nulls hash like the empty string.
    """
    return _hashes(texts, block, second=False)[0]


def stable_hash_pair(texts: pa.Array, block: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stable_hash` and a second, independent 64-bit hash of each string, in one pass.

    The second is a multiplicative polynomial hash (golden-ratio multiplier, each byte + 1, the
    length mixed in) with the same finaliser: together they make a 128-bit key, so two different
    strings share both only by chance (about 1 in 10^25 for five million strings).
    """
    first, second = _hashes(texts, block, second=True)
    assert second is not None
    return first, second


_POLY_SEED = np.uint64(0x84222325CBF29CE4)
_POLY_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def _hashes(texts: pa.Array, block: int, second: bool) -> tuple[np.ndarray, np.ndarray | None]:
    texts = pc.fill_null(as_array(texts), "")
    out = np.empty(len(texts), dtype=np.uint64)
    out2 = np.empty(len(texts), dtype=np.uint64) if second else None
    for start in range(0, len(texts), block):
        part = texts.slice(start, block)
        offsets = np.frombuffer(
            part.buffers()[1], dtype=np.int32, count=len(part) + 1, offset=part.offset * 4
        )
        data = np.frombuffer(part.buffers()[2], dtype=np.uint8)
        lengths = np.diff(offsets)
        h = np.full(len(part), _FNV_OFFSET, dtype=np.uint64)
        g = np.full(len(part), _POLY_SEED, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(int(lengths.max(initial=0))):
                live = lengths > j
                byte = data[np.where(live, offsets[:-1] + j, 0)].astype(np.uint64)
                h = np.where(live, (h ^ byte) * _FNV_PRIME, h)
                if second:
                    g = np.where(live, g * _POLY_MULTIPLIER + byte + np.uint64(1), g)
            out[start : start + len(part)] = fmix64(h)
            if out2 is not None:
                out2[start : start + len(part)] = fmix64(g ^ lengths.astype(np.uint64))
    return out, out2


def stable_shard(ids: pa.Array, num_shards: int) -> np.ndarray:
    """Shard of each id: :func:`stable_hash` modulo ``num_shards`` (stable across runs)."""
    return (stable_hash(ids) % np.uint64(num_shards)).astype(np.int64)
