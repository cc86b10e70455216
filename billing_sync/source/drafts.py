"""Pure parts of ``billing-sync catalog init``, ``check``'s index advice and ``grants``:
from tables reflected by an engine adapter (:class:`~billing_sync.source.engines.ReflectedTable`)
to a draft catalog, a cursor's supporting index (or the ``CREATE INDEX`` a DBA would run)
and the types :mod:`billing_sync.source.reflect` checks a catalog against.

A draft is a starting point, not a decision: keys come from the primary key (or the
first unique index), the cursor from the change-stamp-looking columns (a ``CHG_DATE`` /
``CHG_TIME`` integer pair, or a timestamp whose name says it changes), preferring one
that an index leads with, and columns whose names look sensitive are flagged for a
protection decision in a comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex

from billing_sync.source.engines.types import ReflectedColumn, ReflectedTable
from billing_sync.source.reflect import SourceTable

_SIZED = re.compile(r"\((\d+)(?:\s*,\s*(-?\d+))?\)")
_SENSITIVE = re.compile(
    r"(^|_)(SSN|SIN|NATIONAL_ID|TAX_ID|CARD(_NO|_NUM(BER)?)?|PAN|CVV|CVC|PIN|PASSWORD|PASSWD"
    r"|SECRET|DOB|BIRTH(_DATE)?|IBAN|BANK_ACC(OUN)?T|ROUTING|EMAIL|PHONE|MEMO|REMARKS?)($|_)",
    re.IGNORECASE,
)
_CHANGE_STAMP = re.compile(r"(UPD|CHG|CHANGE|MODIF|LAST_?MOD|ROW_?VERSION)", re.IGNORECASE)
_CREATED_STAMP = re.compile(r"(CRT|CREAT|INSERT|ADDED)", re.IGNORECASE)
_INTEGER_NAMES = {"tinyint": "smallint", "smallint": "smallint", "mediumint": "integer",
                  "int": "integer", "integer": "integer", "bigint": "bigint"}  # fmt: skip


_UNSIGNED_NAMES = {"tinyint": "smallint", "smallint": "integer", "mediumint": "integer",
                   "int": "bigint", "integer": "bigint", "bigint": "numeric(20,0)"}  # fmt: skip


def normalized_type(column: ReflectedColumn) -> str:
    """A reflected column's type as :mod:`~billing_sync.source.reflect` reads types
    (PostgreSQL's spelling), whatever the engine: ``DECIMAL(11, 2)`` ->
    ``numeric(11,2)``, ``DATETIME`` -> ``timestamp without time zone``, ``BLOB`` -> ``bytea``.

    >>> normalized_type(ReflectedColumn("A", "DECIMAL(11, 2)", "numeric", True))
    'numeric(11,2)'
    >>> normalized_type(ReflectedColumn("B", "NUMBER(7, 0)", "int", True))
    'numeric(7,0)'
    >>> normalized_type(ReflectedColumn("C", "BIGINT UNSIGNED", "int", True))
    'numeric(20,0)'
    """
    spelled = column.sql_type.lower()
    head = spelled.split("(")[0].split()[0] if spelled else ""
    sized = _SIZED.search(spelled)
    family = column.family
    if family == "int":
        if "unsigned" in spelled and head in _UNSIGNED_NAMES:
            # MySQL's unsigned integers reach twice as far: the next wider type holds them.
            return _UNSIGNED_NAMES[head]
        if head in _INTEGER_NAMES:
            return _INTEGER_NAMES[head]
        precision = sized.group(1) if sized else "38"
        return f"numeric({precision},0)"
    if family == "numeric":
        if sized and sized.group(2) is not None:
            return f"numeric({sized.group(1)},{sized.group(2)})"
        return "numeric"
    if family == "text":
        size = f"({sized.group(1)})" if sized else ""
        if head in ("char", "character", "nchar"):
            return f"character{size}"
        return f"character varying{size}" if size else "text"
    simple = {
        "binary": "bytea", "float": "double precision", "date": "date",
        "timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone",
        "boolean": "boolean", "time": "time without time zone",
    }  # fmt: skip
    return simple.get(family, spelled or "other")


def source_table(table: ReflectedTable) -> SourceTable:
    """``table`` as the catalog check reads it (normalized types, unique keys)."""
    return SourceTable(
        name=table.name,
        columns={name: normalized_type(column) for name, column in table.columns.items()},
        unique_keys=[tuple(unique) for unique in table.unique_keys],
    )


def supporting_index(table: ReflectedTable, cursor: Sequence[str]) -> str | None:
    """The index whose leading columns are the cursor columns, or None (the change
    query then reads the whole table at every batch)."""
    wanted = [name.upper() for name in cursor]
    for name, columns in table.indexes.items():
        if [column.upper() for column in columns[: len(wanted)]] == wanted:
            return name
    if table.primary_key and [c.upper() for c in table.primary_key[: len(wanted)]] == wanted:
        return "PRIMARY KEY"
    return None


def create_index_sql(
    dialect: sa.Dialect, *, schema: str | None, table: str, cursor: Sequence[str],
    key: Sequence[str],
) -> str:  # fmt: skip
    """The ``CREATE INDEX`` on ``(cursor..., key...)`` a DBA would run, in ``dialect``'s
    SQL (quoting included): what ``check`` prints for a cursor without an index."""
    names = list(dict.fromkeys([*cursor, *key]))
    # Types do not show in CREATE INDEX; an Index needs a real Table to compile.
    clause = sa.Table(
        table, sa.MetaData(), *(sa.Column(name, sa.Integer) for name in names), schema=schema
    )
    index_name = f"{table}_CHG_IX" if table.isupper() else f"{table}_chg_ix"
    index = sa.Index(index_name, *(clause.c[name] for name in names))
    return str(CreateIndex(index).compile(dialect=dialect)).strip()


@dataclass(frozen=True)
class CursorChoice:
    columns: tuple[str, ...]
    cursor_format: str  # timestamp | cyymmdd_hhmmss
    index: str | None


def cursor_candidates(table: ReflectedTable) -> list[CursorChoice]:
    """Change-stamp columns of ``table``, those an index leads with first."""
    names = {name.upper(): name for name in table.columns}
    found: list[CursorChoice] = []
    for prefix in ("CHG", "CHANGE", "UPD", "UPDATE", "LST_UPD", "LAST_UPD"):
        date, time = names.get(f"{prefix}_DATE"), names.get(f"{prefix}_TIME")
        if date and time and {table.columns[date].family, table.columns[time].family} <= {"int"}:
            pair = (date, time)
            found.append(CursorChoice(pair, "cyymmdd_hhmmss", supporting_index(table, pair)))
    for name, column in table.columns.items():
        if column.family in ("timestamp", "timestamptz", "date") and _CHANGE_STAMP.search(name):
            found.append(CursorChoice((name,), "timestamp", supporting_index(table, (name,))))
    return sorted(found, key=lambda choice: choice.index is None)


def _target_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_") or "column"


def _catalog_type(column: ReflectedColumn) -> str:
    normalized = normalized_type(column)
    if column.family == "int":
        return "bigint" if normalized in ("bigint", "numeric(38,0)") else "integer"
    if normalized.startswith("numeric("):
        return "decimal(" + normalized[len("numeric(") :]
    if column.family == "numeric":
        return "decimal(18,4)"
    mapped = {"date": "date", "timestamp": "timestamp", "timestamptz": "timestamp",
              "boolean": "boolean"}  # fmt: skip
    return mapped.get(column.family, "text")


def _quoted(value: str) -> str:
    # A comma ends a value in a YAML flow mapping: decimal(11,2) must be quoted.
    return f'"{value}"' if "," in value else value


def _column_line(column: ReflectedColumn, *, key: bool) -> str:
    parts = [f"source: {column.name}", f"target: {_target_name(column.name)}",
             f"type: {_quoted(_catalog_type(column))}"]  # fmt: skip
    if column.family == "text" and normalized_type(column).startswith("character("):
        parts.append("converter: trim")
    if key or not column.nullable:
        parts.append("nullable: false")
    line = "      - {" + ", ".join(parts) + "}"
    notes = []
    if _SENSITIVE.search(column.name):
        notes.append("SENSITIVE? decide: protect: hmac | last4 | redact, or drop it")
    if column.family == "binary":
        notes.append("bytes: decide converter ebcdic or latin1")
    if column.family == "other":
        notes.append(f"type {column.sql_type}: no converter known, check it")
    return line + (f"  # {'; '.join(notes)}" if notes else "")


def draft_catalog(
    system: str, schema: str | None, tables: Iterable[ReflectedTable], *,
    timezone: str = "UTC", engine: str = "",
) -> str:  # fmt: skip
    """A draft catalog (YAML text) for ``tables``: review every ``# ...`` note."""
    lines = [
        f"# Draft catalog of {system}, written by billing-sync catalog init from the"
        f" reflected {engine or 'source'} schema {schema or '(default)'}.",
        "# Review: entities and tiers, the cursor, every SENSITIVE? and bytes note.",
        f"system: {system}",
        f"schema: {schema or system}",
        f"timezone: {timezone}",
        "tables:",
    ]
    for table in tables:
        key = list(table.primary_key or (table.unique_keys[0] if table.unique_keys else ()))
        choices = cursor_candidates(table)
        lines.append(f"  - table: {table.name}")
        lines.append(f"    entity: {_target_name(table.name)}")
        lines.append("    tier: standard")
        lines.append(f"    key: [{', '.join(key)}]" if key else
                     "    key: []  # no primary key or unique index: name the key")  # fmt: skip
        if choices:
            best = choices[0]
            cursor = best.columns[0] if len(best.columns) == 1 else list(best.columns)
            shown = cursor if isinstance(cursor, str) else f"[{', '.join(cursor)}]"
            where = f"index {best.index}" if best.index else "NO supporting index"
            lines.append(f"    cursor: {shown}  # {where}")
            if best.cursor_format != "timestamp":
                lines.append(f"    cursor_format: {best.cursor_format}")
            stamps = ("timestamp", "timestamptz")
            created = [
                n
                for n, c in table.columns.items()
                if c.family in stamps and _CREATED_STAMP.search(n)
            ]
            if best.cursor_format == "timestamp" and created:
                lines.append(f"    cursor_fallback: {created[0]}  # if {shown} is NULL until "
                             "the first update")  # fmt: skip
            for other in choices[1:]:
                lines.append(f"    # other cursor candidate: {list(other.columns)}"
                             f" ({other.index or 'no index'})")  # fmt: skip
        else:
            lines.append("    cursor: CHANGE_STAMP  # no change-stamp column found: name one")
        lines.append("    columns:")
        lines.extend(
            _column_line(column, key=column.name in key) for column in table.columns.values()
        )
        lines.append("")
    return "\n".join(lines)
