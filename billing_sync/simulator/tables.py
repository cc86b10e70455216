"""Table definitions and DDL shared by the simulated billers.

A :class:`TableDef` names a table's columns (SQL type and constraints), its primary key
and the capture expression its capture index starts with. :func:`table_statements` turns
it into idempotent ``CREATE TABLE`` / ``CREATE INDEX`` statements, :func:`copy_rows`
loads rows with ``COPY`` and :func:`drop_secondary_indexes` makes bulk loads fast.
No triggers, ever: the pipeline must see the biller as it is (DESIGN §2, promise 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

Row = tuple[Any, ...]


@dataclass(frozen=True)
class TableDef:
    """One source table.

    Attributes
    ----------
    name
        Table name, upper case as DB2 and Oracle report it.
    columns
        ``(name, SQL type and constraints)`` in table order (the ``COPY`` order too).
    key
        Primary key columns.
    cursor
        Leading expressions of the capture index, as SQL text over quoted column names:
        ``('"CHG_DATE"', '"CHG_TIME"')`` or ``('COALESCE("SYS_UPDATE_DATE", ...)',)``.
    extra_indexes
        ``(index name, columns)`` the biller's own programs need.
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    cursor: tuple[str, ...]
    extra_indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def capture_index(self) -> str:
        """Name of the index on ``(cursor..., key...)``."""
        return f"{self.name}_CHG_IX"

    def index_names(self) -> tuple[str, ...]:
        """The capture index and the extra indexes (not the primary key)."""
        return (self.capture_index, *(name for name, _ in self.extra_indexes))


def _columns(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def table_statements(table: TableDef, *, schema: str) -> list[sql.Composed]:
    """``CREATE TABLE`` and ``CREATE INDEX`` statements of ``table``, all idempotent.

    Parameters
    ----------
    table
        The table definition.
    schema
        The PostgreSQL schema that holds the table.

    Returns
    -------
    list of psycopg.sql.Composed
        The table with its primary key, then the capture index, then any other index.
    """
    qualified = sql.Identifier(schema, table.name)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(definition))
        for name, definition in table.columns
    )
    cursor = sql.SQL(", ").join(sql.SQL(f"({expression})") for expression in table.cursor)
    statements = [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
            qualified, columns, _columns(table.key)
        ),
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}, {})").format(
            sql.Identifier(table.capture_index), qualified, cursor, _columns(table.key)
        ),
    ]
    statements.extend(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(name), qualified, _columns(names)
        )
        for name, names in table.extra_indexes
    )
    return statements


def create_tables(
    conn: psycopg.Connection[Any], tables: Mapping[str, TableDef], *, schema: str
) -> None:
    """Create ``schema`` and ``tables`` with their indexes unless they exist.

    Runs in one transaction block: committed here when ``conn`` has no transaction
    open, otherwise a savepoint inside the caller's transaction.
    """
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table in tables.values():
            for statement in table_statements(table, schema=schema):
                conn.execute(statement)


def drop_secondary_indexes(
    conn: psycopg.Connection[Any], tables: Mapping[str, TableDef], *, schema: str
) -> None:
    """Drop the capture and extra indexes before a bulk load (the primary keys stay, to
    catch duplicates); :func:`create_tables` builds them again afterwards."""
    for table in tables.values():
        for index in table.index_names():
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, index)))


def copy_rows(
    conn: psycopg.Connection[Any], table: TableDef, rows: Iterable[Row], *, schema: str
) -> None:
    """``COPY`` ``rows`` (tuples in :attr:`TableDef.columns` order) into ``table``."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table.name), _columns(table.column_names)
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def any_rows(conn: psycopg.Connection[Any], tables: Iterable[str], *, schema: str) -> str | None:
    """The first of ``tables`` that holds a row, or None when all are empty."""
    for name in tables:
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(schema, name))
        found = conn.execute(query).fetchone()
        if found and found[0]:
            return name
    return None


def analyze(conn: psycopg.Connection[Any], tables: Iterable[str], *, schema: str) -> None:
    for name in tables:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, name)))
