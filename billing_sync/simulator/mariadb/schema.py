"""DDL of the simulated ICOMS biller on MariaDB/MySQL, from the PostgreSQL table
definitions (:mod:`billing_sync.simulator.icoms.schema`), and the biller's clock.

A MySQL "schema" is a database: the catalog's ``schema`` names it. Types translate one
to one (``integer`` -> ``INT``, ``numeric(p,s)`` -> ``DECIMAL(p,s)``, ``bytea`` ->
``BLOB``); text is ``utf8mb4_bin`` so that keys compare byte-wise as on DB2 and
PostgreSQL (a ``_ci`` collation would make ``'a'`` and ``'A'`` one key). MariaDB returns
``CHAR`` values without their trailing blanks (PostgreSQL keeps them): the catalog
trims them anyway.

Stamps: MariaDB's ``NOW()`` is the statement's start, not the transaction's, and a
transaction shows in ``information_schema.INNODB_TRX`` (the capture horizon) only from
its first write or locking read. So each write transaction here takes its locking read
first and reads the clock after it (:func:`stamp`): every stamp is then at or after the
second the horizon sees the transaction start in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pymysql
from sqlalchemy.engine import make_url

from billing_sync.simulator.clock import ICOMS_TIMEZONE, cyymmdd, hhmmss
from billing_sync.simulator.icoms.schema import TABLES
from billing_sync.simulator.tables import TableDef

_TYPES = ((re.compile(r"^integer\b"), "INT"), (re.compile(r"^numeric\("), "DECIMAL("),
          (re.compile(r"^bytea\b"), "BLOB"))  # fmt: skip


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def column_type(definition: str) -> str:
    """``'integer NOT NULL'`` -> ``'INT NOT NULL'`` (the PostgreSQL spelling translated)."""
    for pattern, replacement in _TYPES:
        definition = pattern.sub(replacement, definition)
    return definition


def table_statements(table: TableDef, *, schema: str) -> list[str]:
    """``CREATE TABLE`` with the primary key, the capture index on
    ``(CHG_DATE, CHG_TIME, key...)`` and the biller's other indexes."""
    columns = ", ".join(f"{quote(name)} {column_type(d)}" for name, d in table.columns)
    cursor = [expression.strip('"') for expression in table.cursor]
    indexes = [(table.capture_index, (*cursor, *table.key)), *table.extra_indexes]
    keys = "".join(
        f", KEY {quote(name)} ({', '.join(quote(c) for c in names)})" for name, names in indexes
    )
    primary = ", ".join(quote(name) for name in table.key)
    return [
        f"CREATE TABLE IF NOT EXISTS {quote(schema)}.{quote(table.name)} ({columns},"
        f" PRIMARY KEY ({primary}){keys})"
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    ]


def connect(url: str, *, autocommit: bool = False) -> pymysql.connections.Connection[Any]:
    """A PyMySQL connection to the biller's server from a SQLAlchemy URL
    (``mysql+pymysql://user:password@host:port/database``)."""
    parsed = make_url(url)
    return pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.database,
        autocommit=autocommit,
        charset="utf8mb4",
        # UTC sessions: stamps are converted to the biller's zone here, so the server
        # needs no time zone tables (Debian's MariaDB ships without them loaded).
        init_command="SET time_zone = '+00:00'",
    )


def create_schema(
    conn: pymysql.connections.Connection[Any],
    *,
    schema: str = "icoms",
    tables: Mapping[str, TableDef] = TABLES,
) -> None:
    """Create the database ``schema`` and the ICOMS tables unless they exist."""
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(schema)}")
        for table in tables.values():
            for statement in table_statements(table, schema=schema):
                cur.execute(statement)
    conn.commit()


def local_now(conn: pymysql.connections.Connection[Any], zone: str = ICOMS_TIMEZONE) -> datetime:
    """The server's clock in ``zone``, whole seconds, naive (as the biller stamps)."""
    with conn.cursor() as cur:
        cur.execute("SELECT UTC_TIMESTAMP()")
        row = cur.fetchone()
    assert row is not None
    utc: datetime = row[0]
    return utc.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def stamp(conn: pymysql.connections.Connection[Any]) -> tuple[int, int, datetime]:
    """``(CYYMMDD, HHMMSS, local time)`` of now on the server's clock, in ICOMS time.
    Call it after the transaction's first locking read (see the module docstring)."""
    moment = local_now(conn)
    return cyymmdd(moment.date()), hhmmss(moment), moment
