"""Reading values no target can hold without failing the batch (issue 12, item 5).

A biller can hold values that PostgreSQL accepts but nothing downstream can: dates and
timestamps of ``'infinity'``, past year 9999 or BC (Python's ``datetime``, which psycopg
and DuckDB's Python API go through, holds years 1-9999; Arrow's CSV parser refuses
them too), and ``NaN`` or an overlong ``numeric`` in a decimal column. Read strictly, one
such value fails every batch of its table with a message naming nothing
(``DataError: date too large``).

Read here instead, such a value becomes NULL and its text goes into a marker column
``__unreadable__<COLUMN>`` beside it (NULL on every good row). The normalizer turns a
marker into a row-level failure naming table, key, column and value, so the row is
quarantined and the rest of the batch flows. Only the cursor path pays for this: a CSV
``COPY`` read that meets such a value is refused and read again through the cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import abc
from psycopg.adapt import Loader
from psycopg.pq import Format

UNREADABLE_PREFIX = "__unreadable__"
UNREADABLE_REASON = (
    "a value the warehouse and cache cannot hold ('infinity', a year outside 1-9999,"
    " NaN or too many digits)"
)
# Types whose text PostgreSQL writes may be out of every reader's range.
_GUARDED_TYPES = ("date", "timestamp", "timestamptz", "numeric")


def marker(name: str) -> str:
    """The marker column of source column ``name``."""
    return UNREADABLE_PREFIX + name


@dataclass(frozen=True)
class Unreadable:
    """A source value a loader could not turn into a Python value: its text."""

    text: str


def guarded_array(values: Sequence[Any], kind: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """``values`` as an Arrow array of ``kind``, and the marker (None: every value read).

    A value that is :class:`Unreadable` or that Arrow refuses (a NaN decimal, too many
    digits) becomes NULL, its text in the marker.
    """
    if pa.types.is_boolean(kind):
        values = [_as_bool(value) for value in values]
    if not any(isinstance(value, Unreadable) for value in values):
        try:
            return pa.array(values, type=kind), None
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError):
            pass  # one value is out of range: find it below
    good: list[Any] = []
    texts: list[str | None] = []
    for value in values:
        text = _refused(value, kind)
        good.append(None if text is not None else value)
        texts.append(text)
    return pa.array(good, type=kind), pa.array(texts, pa.string())


def _as_bool(value: Any) -> Any:
    """A MySQL/MariaDB ``BOOLEAN`` is ``TINYINT(1)``: its driver returns 0 or 1. Those two
    read as false and true; any other number stays as it is (refused: not a boolean).

    >>> [_as_bool(v) for v in (0, 1, True, None, 2)]
    [False, True, True, None, 2]
    """
    if type(value) is int and value in (0, 1):
        return bool(value)
    return value


def _refused(value: Any, kind: pa.DataType) -> str | None:
    if isinstance(value, Unreadable):
        return value.text
    if value is None:
        return None
    try:
        pa.array([value], type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError):
        return str(value)
    return None


def guarded_table(columns: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """Rows read through a cursor (values possibly :class:`Unreadable`) as ``schema``,
    with a marker column after the fields that had unreadable values."""
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    markers: list[tuple[str, pa.Array]] = []
    for values, field in zip(columns, schema, strict=True):
        array, bad = guarded_array(values, field.type)
        arrays.append(array)
        fields.append(field)
        if bad is not None:
            markers.append((marker(field.name), bad))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    for name, bad in markers:
        table = table.append_column(pa.field(name, pa.string()), bad)
    return table


def guard_loaders(cursor: psycopg.Cursor[Any]) -> None:
    """Make ``cursor`` return :class:`Unreadable` for a date, timestamp or numeric value
    its usual loader refuses, instead of failing the whole fetch."""
    for name in _GUARDED_TYPES:
        for fmt in (Format.TEXT, Format.BINARY):
            info = cursor.adapters.types.get(name)
            if info is None:
                continue
            base = cursor.adapters.get_loader(info.oid, fmt)
            if base is None:
                continue
            cursor.adapters.register_loader(name, _guarded(base, fmt))


def _guarded(base: type[abc.Loader], fmt: Format) -> type[Loader]:
    class GuardedLoader(Loader):
        format = fmt

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._inner = base(oid, context)

        def load(self, data: Any) -> Any:
            try:
                return self._inner.load(data)
            except (psycopg.DataError, ValueError, OverflowError):
                return Unreadable(bytes(data).decode("utf-8", "replace"))

    return GuardedLoader
