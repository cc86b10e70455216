"""Where each contender of ``tail-peers`` lands the peers' table, marker rows watched
there, and the row-by-row comparison with the source.

Markers are new rows of the peers' table (ids from :data:`MARKER_FLOOR`), inserted one per
``interval`` in their own autocommit transaction; the time the commit returned is the
marker's commit time. One observer per target polls it by primary key every 0.1 s (as the
``tail`` scenario polls the warehouse); a marker's freshness is its commit to the first
poll that sees it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from billing_sync.simulator.plain import NOW_UTC, SCHEMA, TABLE, qualified
from billing_sync.simulator.plain_adversity import AdversityIds

MARKER_FLOOR = 1_000_000_000
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class TargetTable:
    """A contender's copy of the peers' table: its database, table and column names."""

    url: str
    table: str  # schema.table
    key: str = "id"
    balance: str = "balance"
    status: str = "status"
    stamp: str = "updated_at"
    deleted_flag: str | None = None  # billing-sync's _is_deleted: a row kept, flagged

    def identifier(self) -> sql.Identifier:
        return sql.Identifier(*self.table.split(".", 1))


def _stamp(value: Any) -> Any:
    """A stamp as naive UTC (dlt lands ``timestamptz``, Sling and the source ``timestamp``)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _money(value: Any) -> Any:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def next_marker_id(source_url: str) -> int:
    with psycopg.connect(source_url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT max(id) FROM {} WHERE id >= %s").format(qualified()), (MARKER_FLOOR,)
        ).fetchone()
    return MARKER_FLOOR if row is None or row[0] is None else int(row[0]) + 1


def insert_marker(conn: psycopg.Connection[Any], number: int) -> float:
    """Insert marker row ``number`` (autocommit); the time its commit returned."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (id, account_no, balance, status, note, updated_at)"
            " VALUES (%s, 'BENCH', 0, 'active', 'marker', " + NOW_UTC + ")"
        ).format(qualified()),
        (number,),
    )
    return time.time()


def visible(conn: psycopg.Connection[Any], target: TargetTable, ids: list[int]) -> list[int]:
    """Which of ``ids`` the target holds (none while its table does not exist yet)."""
    query = sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s)").format(
        sql.Identifier(target.key), target.identifier(), sql.Identifier(target.key)
    )
    try:
        return [int(row[0]) for row in conn.execute(query, (ids,)).fetchall()]
    except psycopg.errors.UndefinedTable:
        return []


@dataclass
class PlainMarkers:
    """A marker writer on the source and an observer on ``target``, as daemon threads."""

    source_url: str
    target: TargetTable
    interval: float
    committed: dict[int, float] = field(default_factory=dict)
    seen: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._guard(f), daemon=True) for f in (self._write, self._watch)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _guard(self, target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except Exception as error:  # reported in the scenario's details
                self.errors.append(f"{target.__name__}: {type(error).__name__}: {error}")

        return run

    def _write(self) -> None:
        number = next_marker_id(self.source_url)
        with psycopg.connect(self.source_url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                committed = insert_marker(conn, number)
                with self._lock:
                    self.committed[number] = committed
                number += 1

    def _watch(self) -> None:
        with psycopg.connect(self.target.url, autocommit=True) as conn:
            while not self._stop.wait(POLL_SECONDS):
                with self._lock:
                    pending = [n for n in self.committed if n not in self.seen]
                if not pending:
                    continue
                found = visible(conn, self.target, pending)
                at = time.time()
                with self._lock:
                    for number in found:
                        self.seen.setdefault(number, at)

    def seen_after(self, moment: float) -> bool:
        with self._lock:
            return any(n in self.seen for n, c in self.committed.items() if c > moment)

    def freshness(self, *, since: float, until: float) -> list[float]:
        """Commit to visible, seconds, of the markers committed in the window (``inf``:
        never seen)."""
        with self._lock:
            return [
                self.seen.get(n, float("inf")) - c
                for n, c in self.committed.items()
                if since <= c < until
            ]


def wait_visible(
    targets: dict[str, TargetTable], source_url: str, *, timeout: float
) -> dict[str, float | None]:
    """Insert one marker and wait until every target shows it: the drain. Seconds each
    took (None: not within ``timeout``)."""
    number = next_marker_id(source_url)
    with psycopg.connect(source_url, autocommit=True) as conn:
        committed = insert_marker(conn, number)
    waited: dict[str, float | None] = dict.fromkeys(targets)
    connections = {name: psycopg.connect(t.url, autocommit=True) for name, t in targets.items()}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(v is None for v in waited.values()):
            for name, target in targets.items():
                if waited[name] is None and visible(connections[name], target, [number]):
                    waited[name] = time.time() - committed
            time.sleep(POLL_SECONDS)
    finally:
        for connection in connections.values():
            connection.close()
    return waited


def _one(url: str, query: sql.SQL, params: Any = None) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def source_reads(server_url: str, database: str) -> float:
    """Rows returned so far by the read statements run in ``database`` (SELECT, COPY TO,
    and FETCH: SQLAlchemy's server-side cursors, which dlt reads through), from
    ``pg_stat_statements``: the workload and the markers only write."""
    return _one(server_url, sql.SQL(
        "SELECT sum(rows) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = %s AND (s.query ILIKE 'select%%' OR s.query ILIKE 'copy%%'"
        " OR s.query ILIKE 'fetch%%')"
    ), (database,))  # fmt: skip


def rows_written(target: TargetTable) -> float:
    """Rows inserted or updated in ``target``'s table so far (cumulative statistics)."""
    schema, table = target.table.split(".", 1)
    return _one(target.url, sql.SQL(
        "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables"
        " WHERE schemaname = %s AND relname = %s"
    ), (schema, table))  # fmt: skip


def _rows(url: str, query: sql.Composed) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def compare(source_url: str, target: TargetTable, ids: AdversityIds) -> dict[str, Any]:
    """The target against the source, row by row on (balance, status, stamp).

    ``missing``: live source rows the target lacks; ``duplicated``: target rows beyond one
    per key; ``stale``: rows whose values differ, plus rows deleted in the source that the
    target still holds unflagged (``deleted_kept``, counted apart too). ``wrong_by_cause``:
    the wrong rows per adversity range.
    """
    source = {
        int(r[0]): (_money(r[1]), r[2], r[3])
        for r in _rows(
            source_url,
            sql.SQL("SELECT id, balance, status, updated_at FROM {}").format(
                sql.Identifier(SCHEMA, TABLE.name)
            ),
        )
    }
    flag = sql.Identifier(target.deleted_flag) if target.deleted_flag else sql.SQL("false")
    fetched = _rows(
        target.url,
        sql.SQL("SELECT {}, {}, {}, {}, {} FROM {}").format(
            sql.Identifier(target.key),
            sql.Identifier(target.balance),
            sql.Identifier(target.status),
            sql.Identifier(target.stamp),
            flag,
            target.identifier(),
        ),
    )
    held: dict[int, tuple[Any, ...]] = {}
    duplicated = 0
    for key, balance, status, stamp, deleted in fetched:
        if int(key) in held:
            duplicated += 1
        held[int(key)] = (_money(balance), status, _stamp(stamp), bool(deleted))
    wrong: set[int] = set()
    missing = stale = deleted_kept = 0
    for key, values in source.items():
        got = held.get(key)
        if got is None or got[3]:
            missing += 1
            wrong.add(key)
        elif got[:3] != values:
            stale += 1
            wrong.add(key)
    for key, got in held.items():
        if key not in source and not got[3]:
            deleted_kept += 1
            wrong.add(key)
    by_cause = {
        cause: sum(1 for key in wrong if first <= key <= last)
        for cause, (first, last) in ids.ranges().items()
    }
    return {
        "source_rows": len(source),
        "target_rows": len(fetched),
        "missing": missing,
        "duplicated": duplicated,
        "stale": stale + deleted_kept,
        "deleted_kept": deleted_kept,
        "wrong_by_cause": by_cause,
        "wrong_elsewhere": len(wrong) - sum(by_cause.values()),
    }
