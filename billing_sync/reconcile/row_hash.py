r"""The engine-neutral row hash (docs/sources.md, "The row hash contract"): the contract in
Python, and its SQL text on any engine for :mod:`.portable`.

Each hashed value becomes a canonical text, the same on every engine for the same value:

- ``NULL``, and text that is empty once right-trimmed, as ``\N`` (Oracle cannot tell
  ``''`` from ``NULL``, so no engine may);
- text right-trimmed (``char(n)`` padding), ``\`` written ``\\`` and ``|`` written ``\|``;
- integers as decimal digits, ``decimal(p,s)`` rounded to exactly ``s`` decimals;
- dates as days since 2000-01-01, timestamps as microseconds since 1970-01-01 (no
  session setting, ``DateStyle`` or ``NLS_*``, can change them);
- booleans as ``true``/``false``.

The texts are joined with ``|``; the row's hash is the first 15 hex digits of the MD5 of
the UTF-8 join, read as an integer: 60 bits, non-negative, so a sum over millions of rows
is exact in every engine's decimal ``SUM`` and independent of row order. A key range is
compared by ``count(*)`` and that sum: a duplicated row moves both, two rows swapping
contents move neither (their keys are hashed apart by the range bisection, which reads
keys). With the escaping, the join splits back into its parts one way only
(:func:`split_row_text`), so two rows with different canonical values never share a text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from billing_sync.source.engines.base import (
    ESCAPE,
    HASH_HEX_DIGITS,
    NULL_TEXT,
    SEPARATOR,
    EngineAdapter,
)

CANONICAL = "canonical"
"""A part's pseudo type: the SQL expression is canonical text already (``'t'``/``'f'``)."""

_BIND = "\x00bind("
_EPOCH = datetime(1970, 1, 1)
_DAY_ZERO = date(2000, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def canonical_value(value: Any, catalog_type: str) -> str:
    r"""One value's canonical text, as every engine's SQL writes it.

    >>> canonical_value("a|b\\ ", "text"), canonical_value("  ", "text")
    ('a\\|b\\\\', '\\N')
    >>> canonical_value(Decimal("-1.005"), "decimal(9,2)"), canonical_value(True, "boolean")
    ('-1.01', 'true')
    >>> canonical_value(datetime(1969, 12, 31, 23, 59, 59, 999999), "timestamp")
    '-1'
    """
    if value is None:
        return NULL_TEXT
    if catalog_type == CANONICAL:
        return str(value)
    if catalog_type == "text":
        text = str(value).rstrip(" ")
        if not text:
            return NULL_TEXT
        return text.replace(ESCAPE, ESCAPE * 2).replace(SEPARATOR, ESCAPE + SEPARATOR)
    if catalog_type == "date":
        day = value.date() if isinstance(value, datetime) else value
        return str((day - _DAY_ZERO).days)
    if catalog_type == "timestamp":
        return str((value - _EPOCH) // _MICROSECOND)
    if catalog_type in ("integer", "bigint"):
        return str(int(value))
    if catalog_type == "boolean":
        return "true" if value else "false"
    if catalog_type.startswith("decimal("):
        scale = int(catalog_type[:-1].split(",")[1])
        rounded = Decimal(value).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        return f"{abs(rounded) if rounded == 0 else rounded:f}"
    raise ValueError(f"no canonical text for catalog type {catalog_type!r}")


def row_text(values: Sequence[Any], types: Sequence[str]) -> str:
    """The canonical texts of ``values`` joined with ``|``."""
    return SEPARATOR.join(
        canonical_value(value, kind) for value, kind in zip(values, types, strict=True)
    )


def row_hash(values: Sequence[Any], types: Sequence[str]) -> int:
    """The row's hash: the first 15 hex digits of the MD5 of :func:`row_text`."""
    digest = hashlib.md5(row_text(values, types).encode(), usedforsecurity=False).hexdigest()
    return int(digest[:HASH_HEX_DIGITS], 16)


def split_row_text(text: str) -> list[str | None]:
    r""":func:`row_text` back into its parts, unescaped, ``\N`` as ``None``: the proof that
    the join is injective (a text has one reading).

    >>> split_row_text(r"a\|b|\N|\\N")
    ['a|b', None, '\\N']
    """
    parts: list[str | None] = []
    current: list[str] = []
    raw: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == ESCAPE:
            following = next(chars, "")
            raw.append(char + following)
            current.append(following if following in (ESCAPE, SEPARATOR) else char + following)
        elif char == SEPARATOR:
            parts.append(None if "".join(raw) == NULL_TEXT else "".join(current))
            current, raw = [], []
        else:
            current.append(char)
            raw.append(char)
    parts.append(None if "".join(raw) == NULL_TEXT else "".join(current))
    return parts


def sql_row_hash(adapter: EngineAdapter, parts: Sequence[tuple[str, str]]) -> str:
    """The row hash over ``(SQL expression, catalog type)`` parts as ``adapter``'s SQL text.

    The expressions are SQL text already (quoted names, or a canonical ``CASE``); the
    adapter writes the canonical texts, the join, the MD5 and the integer
    (:meth:`~billing_sync.source.engines.base.EngineAdapter.row_hash`), compiled by the
    engine's SQLAlchemy dialect with no bind parameter in it.
    """
    columns: list[ColumnElement[Any]] = []
    for text, kind in parts:
        # A pyformat dialect doubles the % of literal text; a bind placeholder the caller
        # wrote (``%(sd0)s``) must come out as it went in.
        literal: ColumnElement[Any] = sa.literal_column(text.replace("%(", _BIND))
        columns.append(literal if kind == CANONICAL else adapter.canonical_text(literal, kind))
    joined: list[ColumnElement[Any]] = []
    for column in columns:
        if joined:
            joined.append(adapter.text_literal(SEPARATOR))
        joined.append(column)
    row = adapter.hex_to_int(adapter.md5_hex(adapter.concat(joined)))
    compiled = row.compile(dialect=adapter.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled).replace(_BIND, "%(")
