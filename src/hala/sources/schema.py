"""Expected column types of a source, checked against what ``datasets`` read, with precise errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from hala.errors import SourceSchemaError


@dataclass(frozen=True)
class Kind:
    """An expected Arrow type: ``string``, ``integer``, ``bool``, ``list`` of a kind, or ``struct``."""

    name: str
    item: Kind | None = None
    fields: tuple[tuple[str, Kind], ...] = ()

    def describe(self) -> str:
        """Human wording of the kind, used in error messages."""
        if self.name == "list" and self.item is not None:
            return f"list of {self.item.describe()}"
        if self.name == "struct":
            inner = ", ".join(f"{n}: {k.describe()}" for n, k in self.fields)
            return "{" + inner + "}"
        return self.name


STRING = Kind("string")
INTEGER = Kind("integer")
BOOL = Kind("bool")


def list_of(item: Kind) -> Kind:
    """A list column whose items are ``item``."""
    return Kind("list", item=item)


def struct(**fields: Kind) -> Kind:
    """A struct with at least these fields (extra fields upstream are tolerated)."""
    return Kind("struct", fields=tuple(fields.items()))


def _mismatch(kind: Kind, dtype: pa.DataType) -> str | None:
    """Why ``dtype`` is not ``kind`` (None when it is), with the nested path of the first problem."""
    if kind.name == "string":
        ok = pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_null(dtype)
    elif kind.name == "integer":
        ok = pa.types.is_integer(dtype)
    elif kind.name == "bool":
        ok = pa.types.is_boolean(dtype)
    elif kind.name == "list":
        if not (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)):
            return f"expected {kind.describe()}, found {dtype}"
        assert kind.item is not None
        inner = _mismatch(kind.item, dtype.value_type)
        return None if inner is None else f"in list items: {inner}"
    elif kind.name == "struct":
        if not pa.types.is_struct(dtype):
            return f"expected {kind.describe()}, found {dtype}"
        present = {dtype.field(i).name: dtype.field(i).type for i in range(dtype.num_fields)}
        for field_name, field_kind in kind.fields:
            if field_name not in present:
                return f"struct field '{field_name}' is missing (found fields {sorted(present)})"
            inner = _mismatch(field_kind, present[field_name])
            if inner is not None:
                return f"struct field '{field_name}': {inner}"
        return None
    else:  # pragma: no cover - Kind is only built by the helpers above
        raise ValueError(kind.name)
    return None if ok else f"expected {kind.describe()}, found {dtype}"


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "bool": (bool,),
    "list": (list,),
}


def _first_bad_row(tables: Iterable[pa.Table], column: str, kind: Kind) -> str:
    """Where a column of mixed types first holds a value of the wrong kind (error path only).

    ``tables`` are the source's rows in order (one table, or every batch of a split): the row is
    counted over all of them.
    """
    if kind.name not in _PY_TYPES:
        return ""
    start = 0
    for table in tables:
        values = table.column(column)
        if not isinstance(values.type, pa.JsonType):
            return ""
        for row, raw in enumerate(values.to_pylist(), start=start):
            value = None if raw is None else json.loads(raw)
            wrong_bool = kind.name == "integer" and isinstance(value, bool)
            if value is not None and (wrong_bool or not isinstance(value, _PY_TYPES[kind.name])):
                return f" (values of several types; row {row} holds {value!r}, a {type(value).__name__})"
        start += table.num_rows
    return ""


def check_columns(
    source: str,
    table: pa.Table,
    columns: dict[str, Kind],
    rows: Callable[[], Iterable[pa.Table]] | None = None,
) -> None:
    """Raise :class:`SourceSchemaError` on the first missing or mistyped column.

    ``table`` is the source or one batch of it; ``rows`` gives every batch of the source again, in
    order, so that a value of the wrong type is found by its row in the source (error path only).
    """
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise SourceSchemaError(
            f"{source}: missing column(s) {missing}; found {table.column_names}. "
            "The data files do not have this source's schema: check the path, subset and revision."
        )
    for column, kind in columns.items():
        problem = _mismatch(kind, table.schema.field(column).type)
        if problem is not None:
            where = _first_bad_row(rows() if rows is not None else [table], column, kind)
            raise SourceSchemaError(
                f"{source}: column '{column}' has the wrong type: {problem}{where}. "
                "Fix the data files or pin the revision whose schema this loader expects."
            )


def _is_json(dtype: pa.DataType) -> bool:
    return isinstance(dtype, pa.JsonType)


def _decode_json_items(source: str, column: str, items: pa.Array, kind: Kind) -> pa.StructArray:
    """JSON objects (one per list item) as a struct array with every key found; declared fields checked."""
    import io

    import pyarrow.json as pj

    storage = items.storage if isinstance(items, pa.ExtensionArray) else items
    texts = storage.to_pylist()
    if not texts:
        return pa.StructArray.from_arrays(
            [pa.array([], pa.string()) for _ in kind.fields], names=[n for n, _ in kind.fields]
        )
    if any(t is None for t in texts):
        row = texts.index(None)
        raise SourceSchemaError(
            f"{source}: column '{column}' holds a null turn (item {row}); each turn must be an object"
        )
    try:
        decoded = pj.read_json(io.BytesIO("\n".join(texts).encode("utf-8"))).combine_chunks()
    except pa.ArrowInvalid as exc:
        raise SourceSchemaError(
            f"{source}: column '{column}': its turns are not objects of one type per key ({exc}). "
            "Fix the data files or pin the revision whose schema this loader expects."
        ) from exc
    if decoded.num_rows != len(texts):
        raise SourceSchemaError(f"{source}: column '{column}': a turn is not one JSON object")
    arrays = {name: decoded.column(name).combine_chunks() for name in decoded.column_names}
    for name, field_kind in kind.fields:
        if name not in arrays:  # no turn has the key: all nulls, caught as empty text downstream
            arrays[name] = pa.nulls(len(texts), pa.string())
        problem = _mismatch(field_kind, arrays[name].type)
        if problem is not None:
            raise SourceSchemaError(
                f"{source}: column '{column}' has the wrong type: struct field '{name}': {problem}. "
                "Fix the data files or pin the revision whose schema this loader expects."
            )
    return pa.StructArray.from_arrays(list(arrays.values()), names=list(arrays))


def decode_json_lists(source: str, table: pa.Table, columns: dict[str, Kind]) -> pa.Table:
    """``table`` with each list-of-struct column that ``datasets`` typed ``List(Json)`` decoded to structs.

    datasets 5.2 types a list of objects whose key sets differ (a ``weight`` on some Hermes-3 turns, a
    ``category`` on ReAlign's human turns only) as ``List(Json)``: Arrow ``list<extension<arrow.json>>``.
    Each item is decoded with Arrow's JSON reader into a struct holding every key found; the fields
    this source declares are then type-checked like any other column.
    """
    for name, kind in columns.items():
        if kind.name != "list" or kind.item is None or kind.item.name != "struct":
            continue
        if name not in table.column_names:
            continue
        dtype = table.schema.field(name).type
        if not (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)) or not _is_json(dtype.value_type):
            continue
        lists = table.column(name).combine_chunks()
        values = _decode_json_items(source, name, lists.flatten(), kind.item)
        offsets = pc.subtract(lists.offsets, lists.offsets[0])
        decoded = pa.ListArray.from_arrays(offsets, values, mask=lists.is_null())
        table = table.set_column(table.column_names.index(name), name, decoded)
    return table
