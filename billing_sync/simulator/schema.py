"""DDL of the simulated ICOMS biller: four DB2-style tables in PostgreSQL.

Identifiers are upper case and quoted, as DB2 reports them; keys are padded ``CHAR``;
every table carries the audit columns ``CRT_TS`` (set on insert), ``CHG_TS`` (set on
every later write, ``NULL`` until the first one), ``CHG_USER`` and ``REC_STATUS``
(``'D'`` marks a soft delete). Each table gets one index serving the capture query,
on ``(COALESCE("CHG_TS", "CRT_TS"), key...)`` (DESIGN §4). No triggers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class TableDef:
    """One source table: its columns (name, SQL type and constraints) and primary key."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    extra_indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def capture_index(self) -> str:
        """Name of the index on ``(COALESCE("CHG_TS", "CRT_TS"), key...)``."""
        return f"{self.name}_CHG_IX"


_AUDIT: tuple[tuple[str, str], ...] = (
    ("CRT_TS", "timestamp(6) NOT NULL"),
    ("CHG_TS", "timestamp(6)"),
    ("CHG_USER", "varchar(10)"),
    ("REC_STATUS", "char(1) NOT NULL DEFAULT 'A'"),
)

TABLES: dict[str, TableDef] = {
    table.name: table
    for table in (
        TableDef(
            "ACCOUNT",
            (
                ("SITE_ID", "char(3) NOT NULL"),
                ("ACCOUNT_NO", "char(9) NOT NULL"),
                ("ACCT_NAME", "varchar(40)"),
                ("ACCT_STATUS", "char(1)"),
                ("BILL_CYCLE", "smallint"),
                ("AR_BALANCE", "numeric(12,2)"),
                ("CREDIT_CLASS", "char(1)"),
                *_AUDIT,
            ),
            ("SITE_ID", "ACCOUNT_NO"),
            # The biller's statement run reads accounts by cycle.
            extra_indexes=(("ACCOUNT_CYCLE_IX", ("SITE_ID", "BILL_CYCLE", "ACCOUNT_NO")),),
        ),
        TableDef(
            "CUST_SERVICE",
            (
                ("SITE_ID", "char(3) NOT NULL"),
                ("ACCOUNT_NO", "char(9) NOT NULL"),
                ("SERVICE_CODE", "char(5) NOT NULL"),
                ("OCCURRENCE", "smallint NOT NULL"),
                ("START_DATE", "date"),
                ("STOP_DATE", "date"),
                ("MONTHLY_RATE", "numeric(10,2)"),
                ("QUANTITY", "smallint"),
                ("SVC_STATUS", "char(1)"),
                *_AUDIT,
            ),
            ("SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE"),
        ),
        TableDef(
            "STATEMENT",
            (
                ("SITE_ID", "char(3) NOT NULL"),
                ("ACCOUNT_NO", "char(9) NOT NULL"),
                ("STMT_NO", "integer NOT NULL"),
                ("STMT_DATE", "date"),
                ("DUE_DATE", "date"),
                ("PREV_BALANCE", "numeric(12,2)"),
                ("NEW_CHARGES", "numeric(12,2)"),
                ("AMOUNT_DUE", "numeric(12,2)"),
                *_AUDIT,
            ),
            ("SITE_ID", "ACCOUNT_NO", "STMT_NO"),
        ),
        TableDef(
            "PAYMENT",
            (
                ("SITE_ID", "char(3) NOT NULL"),
                ("PAYMENT_NO", "bigint NOT NULL"),
                ("ACCOUNT_NO", "char(9) NOT NULL"),
                ("PAY_DATE", "date"),
                ("AMOUNT", "numeric(12,2)"),
                ("PAY_METHOD", "char(2)"),
                ("PAY_STATUS", "char(1)"),
                *_AUDIT,
            ),
            ("SITE_ID", "PAYMENT_NO"),
        ),
    )
}
"""The tables in creation order, by name; columns in the order of ``catalog/icoms.yaml``."""

CHANGE_TS = sql.SQL('COALESCE("CHG_TS", "CRT_TS")')
"""The capture cursor's timestamp expression, exactly as the capture index holds it."""


def _columns(names: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def table_statements(table: TableDef, *, schema: str) -> list[sql.Composed]:
    """``CREATE TABLE`` and ``CREATE INDEX`` statements of ``table``, all idempotent.

    Parameters
    ----------
    table
        The table definition, one of :data:`TABLES`.
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
    statements = [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
            qualified, columns, _columns(table.key)
        ),
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (({}), {})").format(
            sql.Identifier(table.capture_index), qualified, CHANGE_TS, _columns(table.key)
        ),
    ]
    statements.extend(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(name), qualified, _columns(columns_)
        )
        for name, columns_ in table.extra_indexes
    )
    return statements


def create_schema(conn: psycopg.Connection[Any], *, schema: str = "icoms") -> None:
    """Create the schema, the four tables and their indexes unless they exist.

    Runs in one transaction block: committed here when ``conn`` has no transaction
    open, otherwise a savepoint inside the caller's transaction.

    Parameters
    ----------
    conn
        An open connection to the source database.
    schema
        Name of the PostgreSQL schema to create (the catalog's ``schema``).
    """
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table in TABLES.values():
            for statement in table_statements(table, schema=schema):
                conn.execute(statement)
