"""Expected column types of a source, checked against what ``datasets`` read, with precise errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

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


def _first_bad_row(column: pa.ChunkedArray, kind: Kind) -> str:
    """Where a column of mixed types first holds a value of the wrong kind (error path only)."""
    if not isinstance(column.type, pa.JsonType) or kind.name not in _PY_TYPES:
        return ""
    for row, raw in enumerate(column.to_pylist()):
        value = None if raw is None else json.loads(raw)
        wrong_bool = kind.name == "integer" and isinstance(value, bool)
        if value is not None and (wrong_bool or not isinstance(value, _PY_TYPES[kind.name])):
            return f" (values of several types; row {row} holds {value!r}, a {type(value).__name__})"
    return ""


def check_columns(source: str, table: pa.Table, columns: dict[str, Kind]) -> None:
    """Raise :class:`SourceSchemaError` on the first missing or mistyped column."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise SourceSchemaError(
            f"{source}: missing column(s) {missing}; found {table.column_names}. "
            "The data files do not have this source's schema: check the path, subset and revision."
        )
    for column, kind in columns.items():
        problem = _mismatch(kind, table.schema.field(column).type)
        if problem is not None:
            where = _first_bad_row(table.column(column), kind)
            raise SourceSchemaError(
                f"{source}: column '{column}' has the wrong type: {problem}{where}. "
                "Fix the data files or pin the revision whose schema this loader expects."
            )
