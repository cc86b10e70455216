"""Loading a simulated biller's seed history with ``COPY``, for either biller.

A :class:`Biller` describes one simulated system: its tables, its local time zone and a
generator of seed rows (a pure function of a :class:`random.Random`, the history's end
``as_of`` and the number of accounts). :func:`fill` loads them chunk by chunk, each chunk
sorted by the change stamp, as a biller's heap holds rows in the order they were last
written, then builds the indexes and analyzes the tables.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from billing_sync.simulator.tables import (
    Row,
    TableDef,
    analyze,
    any_rows,
    copy_rows,
    create_tables,
    drop_secondary_indexes,
)

Chunk = dict[str, list[Row]]


@dataclass(frozen=True)
class Biller:
    """One simulated billing system, as the seed and the public API see it.

    Attributes
    ----------
    system
        Catalog system name (``icoms``, ``amdocs``).
    schema
        Default PostgreSQL schema.
    tables
        Table definitions by name, in creation order.
    timezone
        IANA zone of its audit stamps (the seed history ends at the start of today there).
    generate
        ``generate(rng, as_of, accounts)`` yields chunks of rows per table.
    change_key
        Sort key of a row: its change stamp.
    anchor
        The table whose rows mean "already seeded" (the accounts).
    """

    system: str
    schema: str
    tables: Mapping[str, TableDef]
    timezone: str
    generate: Callable[[random.Random, datetime, int], Iterator[Chunk]]
    change_key: Callable[[Row], Any]
    anchor: str


def default_as_of(conn: psycopg.Connection[Any], timezone: str) -> datetime:
    """The start of the current day in ``timezone`` on the source's clock."""
    row = conn.execute("SELECT date_trunc('day', now() AT TIME ZONE %s)", (timezone,)).fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def fill(
    conn: psycopg.Connection[Any],
    biller: Biller,
    *,
    accounts: int,
    rng_seed: int,
    schema: str,
    as_of: datetime | None,
) -> dict[str, int]:
    """Create the tables if needed and load the seed history into them (empty ones).

    Returns
    -------
    dict of str to int
        Rows written per table.

    Raises
    ------
    ValueError
        If ``accounts`` is negative or a table already holds rows.
    """
    if accounts < 0:
        raise ValueError(f"accounts must be >= 0, got {accounts}")
    create_tables(conn, biller.tables, schema=schema)
    with conn.transaction():
        busy = any_rows(conn, biller.tables, schema=schema)
        if busy is not None:
            raise ValueError(f"{schema}.{busy} already holds rows; seed needs empty tables")
        end = as_of or default_as_of(conn, biller.timezone)
        drop_secondary_indexes(conn, biller.tables, schema=schema)
        counts = dict.fromkeys(biller.tables, 0)
        for chunk in biller.generate(random.Random(rng_seed), end, accounts):
            for name, rows in chunk.items():
                rows.sort(key=biller.change_key)
                copy_rows(conn, biller.tables[name], rows, schema=schema)
                counts[name] += len(rows)
        create_tables(conn, biller.tables, schema=schema)
        analyze(conn, biller.tables, schema=schema)
    return counts


def fill_if_empty(
    conn: psycopg.Connection[Any],
    biller: Biller,
    *,
    accounts: int,
    rng_seed: int,
    schema: str,
    as_of: datetime | None,
) -> dict[str, int]:
    """:func:`fill` unless the biller's account table already holds rows (then ``{}``)."""
    create_tables(conn, biller.tables, schema=schema)
    with conn.transaction():
        seeded = any_rows(conn, [biller.anchor], schema=schema)
    if seeded:
        return {}
    return fill(conn, biller, accounts=accounts, rng_seed=rng_seed, schema=schema, as_of=as_of)
