"""The peers' table: one plain PostgreSQL table with a microsecond ``updated_at``, and a
workload of concurrent writers that set it to ``now()``.

This is the table dlt and Sling follow with their own incremental cursor in
``billing-sync bench tail-peers`` (issue 19), and the one billing-sync's priority tier syncs
through Dagster alongside them (catalog ``peers``): no CYYMMDD pairs, no second-resolution
Oracle ``DATE``, just what a peer's documentation assumes. ``updated_at`` is the writing
transaction's start (``now()``) in UTC, to the microsecond; the capture index is on
``(updated_at, id)``. No triggers (DESIGN §2): every writer stamps its own rows.

- :func:`create_table`, :func:`seed`: the table and its rows (ids ``1..rows``).
- :class:`PlainWorkload`: ``writers`` threads updating random rows at ``rate`` rows/s.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from billing_sync.simulator.tables import TableDef, analyze, create_tables

SYSTEM = "peers"
SCHEMA = "peers"
TABLE = TableDef(
    name="account_balance",
    columns=(
        ("id", "bigint NOT NULL"),
        ("account_no", "text NOT NULL"),
        ("balance", "numeric(12,2) NOT NULL"),
        ("status", "text NOT NULL"),
        ("note", "text"),
        ("updated_at", "timestamp(6) NOT NULL"),
    ),
    key=("id",),
    cursor=('"updated_at"',),
)
NOW_UTC = "(now() AT TIME ZONE 'UTC')"
"""The writing transaction's start in UTC, microseconds kept: every stamp of the table."""

STATUSES = ("active", "suspended", "closed")


def qualified(schema: str = SCHEMA) -> sql.Composed:
    return sql.SQL("{}").format(sql.Identifier(schema, TABLE.name))


def create_table(conn: psycopg.Connection[Any], *, schema: str = SCHEMA) -> None:
    """The schema, the table (primary key ``id``) and its index on ``(updated_at, id)``."""
    create_tables(conn, {TABLE.name: TABLE}, schema=schema)


def seed(conn: psycopg.Connection[Any], *, rows: int, schema: str = SCHEMA) -> int:
    """Create the table if needed and fill ids ``1..rows`` (it must be empty), stamped
    now; then ``ANALYZE``. Returns the rows written."""
    create_table(conn, schema=schema)
    with conn.transaction():
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(schema)))
        count = found.fetchone()
        if count and count[0]:
            raise ValueError(f"{schema}.{TABLE.name} already holds {count[0]:,} rows")
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, account_no, balance, status, note, updated_at)"
                " SELECT i, lpad(i::text, 9, '0'), (i %% 100000) / 100.0,"
                " (ARRAY['active', 'suspended', 'closed'])[1 + i %% 3], 'seed', "
                + NOW_UTC
                + " FROM generate_series(1, %s) AS i"
            ).format(qualified(schema)),
            (rows,),
        )
    analyze(conn, [TABLE.name], schema=schema)
    return rows


def max_id(conn: psycopg.Connection[Any], *, schema: str = SCHEMA) -> int:
    row = conn.execute(sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(qualified(schema)))
    found = row.fetchone()
    return int(found[0]) if found else 0


class PlainWorkload:
    """``writers`` threads, each committing transactions that update
    ``rows_per_transaction`` random rows (``balance``, ``status``, ``updated_at = now()``),
    together at ``rate`` rows/s (the shape issue 20 measured the peers under: 4 writers,
    about 3,500 rows/s). Ids are drawn from ``1..id_range`` (default: the table's max id
    when started)."""

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        writers: int = 4,
        rows_per_transaction: int = 25,
        schema: str = SCHEMA,
        id_range: int | None = None,
        seed: int = 11,
    ) -> None:
        if rate <= 0 or writers < 1 or rows_per_transaction < 1:
            raise ValueError("rate, writers and rows_per_transaction must be positive")
        self.url = url
        self.rate = rate
        self.writers = writers
        self.rows_per_transaction = rows_per_transaction
        self.schema = schema
        self.id_range = id_range
        self.seed = seed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._rows = 0
        self.errors: list[str] = []

    @property
    def rows_changed(self) -> int:
        with self._lock:
            return self._rows

    def start(self) -> None:
        if self.id_range is None:
            with psycopg.connect(self.url, autocommit=True) as conn:
                self.id_range = max_id(conn, schema=self.schema)
        if not self.id_range:
            raise ValueError(f"{self.schema}.{TABLE.name} is empty: seed it first")
        for number in range(self.writers):
            thread = threading.Thread(target=self._guarded, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def __enter__(self) -> PlainWorkload:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _guarded(self, number: int) -> None:
        try:
            self._write(number)
        except Exception as error:  # reported by the caller, not raised in a thread
            self.errors.append(f"writer {number}: {type(error).__name__}: {error}")

    def _write(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        per_second = self.rate / self.writers / self.rows_per_transaction
        interval = 1.0 / per_second
        statement = sql.SQL(
            "UPDATE {} SET balance = balance + %s, status = %s, updated_at = "
            + NOW_UTC
            + " WHERE id = ANY(%s)"
        ).format(qualified(self.schema))
        assert self.id_range is not None
        with psycopg.connect(self.url, autocommit=True) as conn:
            next_at = time.monotonic()
            while not self._stop.is_set():
                # Sorted ids: concurrent writers lock rows in one order, so no deadlock.
                ids = sorted(rng.sample(range(1, self.id_range + 1), self.rows_per_transaction))
                done = conn.execute(
                    statement, (rng.randint(1, 500) / 100, rng.choice(STATUSES), ids)
                ).rowcount
                with self._lock:
                    self._rows += max(done, 0)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -1.0:
                    next_at = time.monotonic()  # behind by more than a second: do not burst
