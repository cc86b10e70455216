"""The source's own schema, and a catalog checked against it at start (DESIGN §5).

Before the first read, every mapping of a catalog is checked against the reflected
tables of its source schema. Each problem names the catalog file, the table and the
column, and all of them are reported together as one :class:`ConfigError`:

* a table or column (mapped, key, cursor, soft-delete) the source does not have;
* a converter that cannot read the column's type (``implied_decimal`` on a text
  column, ``cyymmdd`` on a date, ``ebcdic`` on anything but bytes), or a plain
  column whose type does not cast exactly to its target (a float into a decimal
  needs ``float_money``);
* a column whose source type holds values its target cannot hold exactly (:func:`fit_problem`):
  a scale the target would round (``numeric(11,3)`` or unbounded ``numeric`` into
  ``decimal(11,2)``: 12.999 would load as 13.00), or a range it cannot reach (``bigint``
  into ``integer``, ``numeric(14,2)`` into ``decimal(12,2)``: such rows would be
  quarantined). The problem names ``system.table.column``, both types and the reason.
  Target ``text`` is unbounded, so text never narrows;
* a key that the source does not keep unique: a primary key or unique index on a
  subset of the key proves it; without one, the first :data:`DUPLICATE_CHECK_ROWS`
  rows are searched for a duplicate (a bounded read) and the table is logged as unproven.

A catalog that passes comes back with ``source_types`` filled in, so batches are fetched
with the source's own types (a ``BAN`` number mapped to text is cast after the fetch).
Columns marked ``drop`` are never selected: :mod:`billing_sync.config` refuses a mapping
that names one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from billing_sync.config import ColumnSpec, ConfigError, SourceCatalog, TableMapping
from billing_sync.source.families import TEXT_FORM_FAMILIES, observes_dst, type_family
from billing_sync.sql import BoundQuery, qualified, quote_ident

log = logging.getLogger(__name__)

DUPLICATE_CHECK_ROWS = 100_000

# What each converter reads.
_CONVERTER_READS: dict[str, tuple[str, ...]] = {
    "trim": ("text",),
    "lookup": ("text", "int"),
    "cyymmdd": ("int",),
    "hhmmss": ("int",),
    "cyymmdd_hhmmss": ("int",),
    "implied_decimal": ("int",),
    "float_money": ("float", "numeric", "int"),
    "ebcdic": ("binary",),
    "latin1": ("binary",),
}

# A plain column (no converter): source families that cast exactly to the target type.
_PLAIN_READS: dict[str, tuple[str, ...]] = {
    "text": ("text", "int", "numeric", "date", "timestamp", "boolean", *TEXT_FORM_FAMILIES),
    "integer": ("int",),
    "bigint": ("int",),
    "decimal": ("int", "numeric"),
    "date": ("date", "timestamp"),
    "timestamp": ("timestamp", "timestamptz", "date"),
    "boolean": ("boolean",),
}


@dataclass(frozen=True)
class SourceTable:
    """One reflected source table: column SQL types and the unique keys it enforces."""

    name: str
    columns: dict[str, str]  # name -> SQL type, e.g. "character(10)", "numeric(7,0)"
    unique_keys: list[tuple[str, ...]] = field(default_factory=list)

    def key_is_unique(self, key: list[str]) -> bool:
        return any(set(unique) <= set(key) for unique in self.unique_keys)


# Exact ranges of the integer types, by the names PostgreSQL, Db2 and Oracle report.
_INTEGER_MAX = {
    "smallint": 2**15 - 1, "int2": 2**15 - 1,
    "integer": 2**31 - 1, "int": 2**31 - 1, "int4": 2**31 - 1,
    "bigint": 2**63 - 1, "int8": 2**63 - 1,
}  # fmt: skip
_NUMERIC = re.compile(r"^(?:numeric|decimal|number)\s*(?:\(\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?\))?$")
_TARGET_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")


@dataclass(frozen=True)
class _Span:
    """What a numeric type holds: values up to ``largest`` in magnitude, ``scale`` decimal
    places; ``largest`` None: no bound (an unbounded ``numeric``)."""

    largest: Decimal | None
    scale: int | None


def _source_span(sql_type: str) -> _Span | None:
    """The span of a reflected numeric type; None for a type that is not a number."""
    name = sql_type.lower().strip()
    if name in _INTEGER_MAX:
        return _Span(Decimal(_INTEGER_MAX[name]), 0)
    match = _NUMERIC.match(name)
    if match is None:
        return None
    if match.group(1) is None:
        return _Span(None, None)
    precision, scale = int(match.group(1)), int(match.group(2) or 0)
    # Oracle's negative scale (NUMBER(5,-2)) rounds to hundreds: whole numbers, p - s digits.
    return _Span(Decimal(10) ** (precision - scale) - Decimal(10) ** -scale, max(scale, 0))


def _target_span(catalog_type: str) -> _Span | None:
    if catalog_type in ("integer", "bigint"):
        return _Span(Decimal(_INTEGER_MAX[catalog_type]), 0)
    match = _TARGET_DECIMAL.match(catalog_type)
    if match is None:
        return None  # text, dates, booleans: not a number (text holds any)
    precision, scale = int(match.group(1)), int(match.group(2))
    return _Span(Decimal(10) ** (precision - scale) - Decimal(10) ** -scale, scale)


def fit_problem(column: ColumnSpec, sql_type: str) -> str | None:
    """Why source values of ``sql_type`` would not load exactly into ``column``, or None.

    A plain column must hold the source's scale and range; ``implied_decimal(k)`` divides
    by 10^k first. Other converters are checked by what they read (:data:`_CONVERTER_READS`)
    and report a value they cannot convert per row.

    >>> from billing_sync.config import ColumnSpec
    >>> amount = ColumnSpec(source="AMOUNT", target="amount", type="decimal(11,2)")
    >>> fit_problem(amount, "numeric(11,2)") is None
    True
    >>> fit_problem(amount, "numeric").split(";")[0]  # doctest: +ELLIPSIS
    'unbounded numeric has any scale and range: ... (12.999 as 13.00) or quarantined'
    """
    if column.protection is not None or column.is_constant:
        return None
    source = _source_span(sql_type)
    target = _target_span(column.type)
    if source is None or target is None:
        return None
    places = 0
    if column.converter is not None:
        if column.converter.name != "implied_decimal" or column.converter.places is None:
            return None
        places = column.converter.places
    assert target.largest is not None and target.scale is not None
    if source.largest is None or source.scale is None:
        return (
            f"unbounded {sql_type} has any scale and range: values would be rounded to"
            f" {target.scale} places ({_example(target.scale)}) or quarantined; declare the"
            " source column's precision and scale, or map it to text"
        )
    scale = source.scale + places
    largest = source.largest / Decimal(10) ** places
    if scale > target.scale:
        return (
            f"{scale} decimal places, the target keeps {target.scale}: values would be"
            f" rounded ({_example(target.scale)}); widen the target's scale"
        )
    if largest > target.largest:
        return (
            f"values up to {largest.normalize():f}, the target holds up to"
            f" {target.largest.normalize():f}: larger ones would be quarantined; widen the"
            " target type"
        )
    return None


def _example(places: int) -> str:
    exact = Decimal("12." + "9" * (places + 1))
    return f"{exact} as {exact.quantize(Decimal(10) ** -places)}"


# -- pure: a mapping against a reflected table ----------------------------------------------


def mapping_problems(
    mapping: TableMapping,
    table: SourceTable | None,
    *,
    system: str | None = None,
    timezone: str = "UTC",
) -> list[str]:
    """What is wrong with ``mapping`` against the source ``table`` (``None``: absent);
    ``system`` names the columns of a type problem ``system.TABLE.COLUMN``; ``timezone``
    is the catalog's (a ``timestamptz`` cursor needs one without daylight saving)."""
    if table is None:
        return [f"table {mapping.table}: not in the source schema"]
    problems: list[str] = []

    def where(name: str) -> str:
        return f"table {mapping.table}, column {name}"

    named = {
        *mapping.source_columns, *mapping.key, *mapping.cursor_columns,
        *([mapping.cursor_fallback] if mapping.cursor_fallback else []),
        *([mapping.soft_delete.column] if mapping.soft_delete else []),
    }  # fmt: skip
    for name in sorted(named - set(table.columns)):
        problems.append(f"{where(name)}: not in the source table")

    def qualified(name: str) -> str:
        return "column " + ".".join(filter(None, (system, mapping.table, name)))

    for column in mapping.columns:
        problems.extend(_type_problems(column, table, where, qualified))
        for name in column.source_names:
            if name not in table.columns or len(column.source_names) != 1:
                continue
            why = fit_problem(column, table.columns[name])
            if why is not None:
                qualified_name = ".".join(filter(None, (system, mapping.table, name)))
                problems.append(
                    f"column {qualified_name}: source type {table.columns[name]} does not fit"
                    f" target {column.target} {column.type}: {why}"
                )
    cursor_families = ("int",) if mapping.cursor_format == "cyymmdd_hhmmss" else (
        "timestamp", "timestamptz", "date")  # fmt: skip
    problems.extend(_zone_problems(mapping, table, timezone, qualified))
    for name in mapping.cursor_columns:
        if name in table.columns and type_family(table.columns[name]) not in cursor_families:
            problems.append(
                f"{where(name)}: a {mapping.cursor_format} cursor column cannot be"
                f" {table.columns[name]}"
            )
    return problems


def _zone_problems(
    mapping: TableMapping, table: SourceTable, zone: str, qualified: Callable[[str], str]
) -> list[str]:
    """A ``timestamptz`` cursor is read as wall time in the catalog's zone (the session's
    TimeZone), and the watermark keeps that wall time: in a zone with daylight saving the
    autumn hour repeats, and a watermark inside it could skip the second pass of that
    hour. So such a cursor needs a zone without daylight saving (UTC, or a fixed one)."""
    if not observes_dst(zone):
        return []
    return [
        f"{qualified(name)}: a timestamptz cursor needs a catalog timezone without"
        f" daylight saving (UTC), not {zone}: its wall clock repeats an hour each autumn"
        for name in mapping.cursor_columns
        if name in table.columns and type_family(table.columns[name]) == "timestamptz"
    ]


def _type_problems(
    column: ColumnSpec,
    table: SourceTable,
    where: Callable[[str], str],
    qualified: Callable[[str], str],
) -> list[str]:
    problems = []
    for name in column.source_names:
        if name not in table.columns:
            continue
        sql_type = table.columns[name]
        family = type_family(sql_type)
        if column.converter is not None:
            wanted = _CONVERTER_READS[column.converter.name]
            what = f"converter {column.converter.label}"
        elif column.protection is not None:
            wanted, what = ("text", "int"), f"protect {column.protection}"
        else:
            wanted = _PLAIN_READS[column.type.split("(")[0]]
            what = f"target type {column.type}"
        if family in ("binary", "other") and family not in wanted:
            # Nothing in the model holds it: say which system, table, column and type.
            carry = "converter ebcdic or latin1 (text in that encoding)" if (
                family == "binary") else "nothing: leave the column out of the mapping"  # fmt: skip
            problems.append(
                f"{qualified(name)}: source type {sql_type} cannot be carried as"
                f" {column.type}; what reads it: {carry}"
            )
        elif family not in wanted:
            hint = " (use float_money)" if family == "float" and column.type.startswith(
                "decimal") else ""  # fmt: skip
            problems.append(f"{where(name)}: {what} cannot read a {sql_type} column{hint}")
    return problems


# -- I/O: reflecting PostgreSQL --------------------------------------------------------------

# pg_type.typtype: 'e' an enum (reported as "enum": its labels are text), 'd' a domain
# (reported as its base type, typbasetype with typtypmod).
# https://www.postgresql.org/docs/current/catalog-pg-type.html
_COLUMNS_SQL = (
    "SELECT c.relname, a.attname, CASE t.typtype WHEN 'e' THEN 'enum'"
    " WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod)"
    " ELSE format_type(a.atttypid, a.atttypmod) END"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_type t ON t.oid = a.atttypid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)"
    " AND a.attnum > 0 AND NOT a.attisdropped"
)
_UNIQUE_SQL = (
    "SELECT c.relname, array_agg(a.attname::text ORDER BY k.ord)"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
    " WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND i.indisunique"
    " AND i.indpred IS NULL AND i.indexprs IS NULL"
    " GROUP BY c.relname, i.indexrelid"
)


def reflect_tables(session: Any, schema: str, tables: list[str]) -> dict[str, SourceTable]:
    """The named tables of ``schema`` as the source describes them (PostgreSQL's
    catalogs here; another engine's through its adapter, SQLAlchemy's Inspector)."""
    if getattr(session, "engine", "postgresql") != "postgresql":
        reflected: dict[str, SourceTable] = session.reflect(schema, tables)
        return reflected
    params = {"schema": schema, "tables": tables}
    text = pa.string()
    columns = session.read_arrow(
        BoundQuery(_COLUMNS_SQL, params),
        pa.schema([("table", text), ("column", text), ("type", text)]),
    ).to_pylist()
    uniques = session.read_arrow(
        BoundQuery(_UNIQUE_SQL, params),
        pa.schema([("table", text), ("columns", pa.list_(text))]),
    ).to_pylist()
    found: dict[str, SourceTable] = {}
    for row in columns:
        table = found.setdefault(row["table"], SourceTable(row["table"], {}))
        table.columns[row["column"]] = row["type"]
    for row in uniques:
        if row["table"] in found:
            found[row["table"]].unique_keys.append(tuple(row["columns"]))
    return found


def duplicate_key(session: Any, schema: str, mapping: TableMapping) -> tuple[Any, ...] | None:
    """A key value held by two rows among the first :data:`DUPLICATE_CHECK_ROWS` rows."""
    key = ", ".join(quote_ident(name) for name in mapping.key)
    as_text = ", ".join(f"CAST({quote_ident(name)} AS text)" for name in mapping.key)
    text = (
        f"SELECT {as_text} FROM (SELECT {key} FROM {qualified(schema, mapping.table)}"
        f" LIMIT {DUPLICATE_CHECK_ROWS}) AS sample GROUP BY {key} HAVING count(*) > 1 LIMIT 1"
    )
    schema_of_row = pa.schema([pa.field(name, pa.string()) for name in mapping.key])
    rows = session.read_arrow(BoundQuery(text, {}), schema_of_row).to_pylist()
    return tuple(rows[0].values()) if rows else None


def check_catalog(session: Any, catalog: SourceCatalog) -> SourceCatalog:
    """``catalog`` checked against its reflected source schema, with ``source_types``
    filled in; a :class:`ConfigError` listing every problem otherwise."""
    origin = catalog.source_file or f"catalog {catalog.system}"
    tables = reflect_tables(session, catalog.schema_name, [m.table for m in catalog.tables])
    problems: list[str] = []
    checked: list[TableMapping] = []
    for mapping in catalog.tables:
        table = tables.get(mapping.table)
        found = mapping_problems(mapping, table, system=catalog.system, timezone=catalog.timezone)
        if table is not None and not found and not table.key_is_unique(mapping.key):
            duplicate = duplicate_key(session, catalog.schema_name, mapping)
            if duplicate is not None:
                found.append(
                    f"table {mapping.table}: key {mapping.key} is not unique in the source"
                    f" (two rows hold {list(duplicate)})"
                )
            else:
                log.warning(
                    "%s: no primary key or unique index of %s.%s covers its key %s; no"
                    " duplicate among its first %d rows",
                    origin, catalog.schema_name, mapping.table, mapping.key,
                    DUPLICATE_CHECK_ROWS,
                )  # fmt: skip
        problems.extend(found)
        # The fetched columns' types, and the cursor's (its resolution floors the horizon).
        wanted = [*mapping.source_columns, *mapping.cursor_columns,
                  *([mapping.cursor_fallback] if mapping.cursor_fallback else [])]  # fmt: skip
        types = {} if table is None else {
            name: table.columns[name] for name in wanted if name in table.columns
        }  # fmt: skip
        checked.append(mapping.model_copy(update={"source_types": types}))
    if problems:
        raise ConfigError(
            f"{origin} does not fit the source schema {catalog.schema_name}:\n  - "
            + "\n  - ".join(problems)
        )
    checked_catalog = catalog.model_copy(update={"tables": checked})
    checked_catalog.__dict__.pop("by_table", None)  # a cached_property of the old tables
    return checked_catalog


# Re-exported: callers name the check's type vocabulary through this module.
__all__ = ["TEXT_FORM_FAMILIES", "SourceTable", "mapping_problems", "observes_dst", "type_family"]
