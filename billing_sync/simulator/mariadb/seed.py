"""Seed history of the ICOMS biller on MariaDB: the rows the PostgreSQL biller gets
(:func:`billing_sync.simulator.icoms.seed.generate`, the same function of the seed),
inserted in multi-row ``INSERT`` statements in change-stamp order."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import pymysql

from billing_sync.simulator.icoms import seed as icoms_seed
from billing_sync.simulator.icoms.schema import TABLES
from billing_sync.simulator.mariadb.schema import create_schema, local_now, quote

INSERT_ROWS = 2_000
"""Rows per ``executemany`` call (PyMySQL folds them into one multi-row INSERT)."""


def insert_rows(cur: Any, schema: str, name: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (values in the order of the table's columns) into ``schema.name``."""
    columns = TABLES[name].column_names
    text = (
        f"INSERT INTO {quote(schema)}.{quote(name)} ({', '.join(quote(c) for c in columns)})"
        f" VALUES ({', '.join(['%s'] * len(columns))})"
    )
    for start in range(0, len(rows), INSERT_ROWS):
        cur.executemany(text, rows[start : start + INSERT_ROWS])


def fill(
    conn: pymysql.connections.Connection[Any],
    *,
    accounts: int,
    rng_seed: int = 7,
    schema: str = "icoms",
    as_of: datetime | None = None,
) -> dict[str, int]:
    """Create the tables if needed and fill them (they must be empty), in one transaction.

    ``as_of`` (naive, ICOMS local time) ends the history; default: the start of today
    there on the server's clock. Returns the rows written per table.
    """
    if accounts < 0:
        raise ValueError(f"accounts must be >= 0, got {accounts}")
    create_schema(conn, schema=schema)
    with conn.cursor() as cur:
        for name in TABLES:
            cur.execute(f"SELECT 1 FROM {quote(schema)}.{quote(name)} LIMIT 1")
            if cur.fetchone() is not None:
                raise ValueError(f"{schema}.{name} already holds rows; seed needs empty tables")
        end = as_of or datetime.combine(local_now(conn).date(), datetime.min.time())
        counts = dict.fromkeys(TABLES, 0)
        for chunk in icoms_seed.generate(random.Random(rng_seed), end, accounts):
            for name, rows in chunk.items():
                rows.sort(key=icoms_seed.change_key)
                insert_rows(cur, schema, name, rows)
                counts[name] += len(rows)
        for name in TABLES:
            cur.execute(f"ANALYZE TABLE {quote(schema)}.{quote(name)}")
            cur.fetchall()
    conn.commit()
    return counts


def seed(
    conn: pymysql.connections.Connection[Any],
    *,
    accounts: int,
    seed: int = 7,
    schema: str = "icoms",
    as_of: datetime | None = None,
) -> dict[str, int]:
    """:func:`fill` with the seed of the PostgreSQL biller's ``seed`` argument."""
    return fill(conn, accounts=accounts, rng_seed=seed, schema=schema, as_of=as_of)


def seed_if_empty(
    conn: pymysql.connections.Connection[Any],
    *,
    accounts: int,
    seed: int = 7,
    schema: str = "icoms",
    as_of: datetime | None = None,
) -> dict[str, int]:
    """:func:`seed` unless ``ACCOUNT`` already holds rows (then ``{}``)."""
    create_schema(conn, schema=schema)
    with conn.cursor() as cur:
        cur.execute(f"SELECT 1 FROM {quote(schema)}.`ACCOUNT` LIMIT 1")
        if cur.fetchone() is not None:
            conn.commit()
            return {}
    conn.commit()
    return fill(conn, accounts=accounts, rng_seed=seed, schema=schema, as_of=as_of)


__all__ = ["INSERT_ROWS", "fill", "insert_rows", "seed", "seed_if_empty"]
