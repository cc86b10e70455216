"""Reflected tables and the mapping of each engine's column types to the converters'
type families (DESIGN §11): SQLAlchemy's ``Inspector`` reports the types, in the
dialect's own classes; :func:`type_family` names what the capture can carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as sat
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class ReflectedColumn:
    name: str
    sql_type: str  # the dialect's own spelling, e.g. "VARCHAR(10)", "NUMBER(7, 0)"
    family: str  # int, numeric, float, text, date, timestamp, timestamptz, boolean, binary, ...
    nullable: bool


@dataclass(frozen=True)
class ReflectedTable:
    """Columns, keys and indexes of one table, as SQLAlchemy's Inspector reports them."""

    name: str
    columns: dict[str, ReflectedColumn]
    primary_key: tuple[str, ...]
    unique_keys: list[tuple[str, ...]]
    indexes: dict[str, tuple[str, ...]]


def type_family(column_type: sat.TypeEngine[Any]) -> str:
    """The converters' type family of a reflected SQLAlchemy type.

    ``NUMERIC(p, 0)`` (Oracle ``NUMBER(7)``, Db2 ``DECIMAL(7, 0)``) is an integer: that is
    how biller dates like CYYMMDD are stored. A MySQL ``TINYINT(1)`` is a boolean.
    """
    name = type(column_type).__name__.upper()
    if name == "TINYINT" and getattr(column_type, "display_width", None) == 1:
        return "boolean"
    # Oracle DATE carries a time of day: a timestamp, not a date.
    if name == "DATE" and type(column_type).__module__.startswith("sqlalchemy.dialects.oracle"):
        return "timestamp"
    if isinstance(column_type, sat.Boolean):
        return "boolean"
    if isinstance(column_type, sat.Numeric) and (column_type.scale or 0) > 0:
        # Before Integer: Oracle's NUMBER is both a Numeric and an Integer class.
        return "numeric"
    if isinstance(column_type, sat.Integer):
        return "int"
    if isinstance(column_type, sat.Float) or name in ("DOUBLE", "REAL", "BINARY_DOUBLE"):
        return "float"
    if isinstance(column_type, sat.Numeric):
        scale = column_type.scale
        return "int" if scale == 0 else "numeric"
    if isinstance(column_type, sat.DateTime):
        return "timestamptz" if column_type.timezone else "timestamp"
    if isinstance(column_type, sat.Date):
        return "date"
    if isinstance(column_type, sat.Time):
        return "time"
    if isinstance(column_type, sat.Interval) or name == "INTERVAL":  # PostgreSQL's INTERVAL
        return "interval"
    if isinstance(column_type, sat.Uuid) or name == "UUID":
        return "uuid"
    if isinstance(column_type, sat.JSON):
        return "json"
    if isinstance(column_type, sat.Enum):
        return "text"
    if isinstance(column_type, sat.LargeBinary | sat._Binary):
        return "binary"
    if isinstance(column_type, sat.String):
        return "text"
    return "other"


def _compiled_type(column_type: sat.TypeEngine[Any], dialect: sa.Dialect) -> str:
    try:
        return str(column_type.compile(dialect=dialect))
    except Exception:  # a reflected type the dialect cannot print back (NullType)
        return type(column_type).__name__


def reflect_table(connection: Connection, table: str, schema: str | None = None) -> ReflectedTable:
    """One table through SQLAlchemy's Inspector, types mapped to families."""
    inspector = sa.inspect(connection)
    dialect = connection.dialect
    columns = {
        c["name"]: ReflectedColumn(
            name=c["name"],
            sql_type=_compiled_type(c["type"], dialect),
            family=type_family(c["type"]),
            nullable=bool(c.get("nullable", True)),
        )
        for c in inspector.get_columns(table, schema=schema)
    }
    pk = tuple(inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or ())
    uniques = [
        tuple(u["column_names"]) for u in inspector.get_unique_constraints(table, schema=schema)
    ]
    indexes: dict[str, tuple[str, ...]] = {}
    for index in inspector.get_indexes(table, schema=schema):
        names = tuple(name for name in index["column_names"] if name is not None)
        if index.get("unique"):
            uniques.append(names)
        indexes[str(index["name"])] = names
    if pk:
        uniques.insert(0, pk)
    return ReflectedTable(
        name=table, columns=columns, primary_key=pk, unique_keys=uniques, indexes=indexes
    )
