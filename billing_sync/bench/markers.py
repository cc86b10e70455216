"""Marker rows: new source rows whose commit time is known, watched until they show.

Every ``interval`` the writer inserts one marker row into ``PAYMENT`` (priority tier),
``STATEMENT`` and ``CUST_SERVICE`` (standard tier), each in its own autocommit
transaction, on the benchmark's own account ``BEN/000000001`` (outside the simulator's
sites), and notes the time the commit returned. Observers poll the warehouse (by primary
key, every 0.1 s) and the DuckDB cache (opened read-only and briefly, every 0.25 s, as an
analyst would) for the markers not seen yet. A marker's freshness is the time from its
commit to the first poll that saw it.

Markers are inserts, not updates of one row: a row updated more often than the capture
delay keeps a change timestamp newer than every window's horizon, so its capture waits
until the updates pause (see the tail report's notes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
from psycopg import errors, sql

from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.entities import entity_columns
from billing_sync.simulator.clock import ICOMS_STAMP_VALUES
from billing_sync.source.schema import source_schema
from billing_sync.transform.normalize import normalize
from billing_sync.transform.protect import Protector

log = logging.getLogger(__name__)

SITE = "BEN"
ACCOUNT = "000000001"
MAX_PENDING = 2_000

# ICOMS stamps: the transaction's start in local time, as CYYMMDD and HHMMSS numbers.
_NEW = ICOMS_STAMP_VALUES.replace("%", "%%") + ", 'BENCH', 'A'"
_ACCOUNT_ROW = (
    'INSERT INTO {t} ("SITE_ID", "ACCOUNT_NO", "ACCT_NAME", "ACCT_TYPE", "ACCT_STATUS",'
    ' "BILL_CYCLE", "AR_BALANCE", "CREDIT_CLASS", "OPEN_DATE", "CRT_DATE", "CRT_TIME",'
    ' "CHG_DATE", "CHG_TIME", "CHG_USER", "REC_STATUS") VALUES (\'BEN\', \'000000001\','
    f" 'Benchmark marker', 'B', 'A', 1, 0, 'A', 1260101, {_NEW}) ON CONFLICT DO NOTHING"
)

# Per marker table: the INSERT of marker number %(n)s, the key column that numbers
# markers, its floor (far from the numbers the workload uses) and the row's key.
_MARKERS: dict[str, tuple[str, str, int]] = {
    "PAYMENT": (
        'INSERT INTO {t} ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE", "AMOUNT",'
        ' "PAY_METHOD", "PAY_STATUS", "CRT_DATE", "CRT_TIME", "CHG_DATE", "CHG_TIME",'
        ' "CHG_USER", "REC_STATUS") VALUES (\'BEN\', %(n)s, \'000000001\', 1261125, 1.00,'
        f" 'CA', 'P', {_NEW}) ON CONFLICT DO NOTHING",
        "PAYMENT_NO", 2_000_000_000,
    ),
    "STATEMENT": (
        'INSERT INTO {t} ("SITE_ID", "ACCOUNT_NO", "STMT_NO", "STMT_DATE", "DUE_DATE",'
        ' "PREV_BALANCE", "NEW_CHARGES", "AMOUNT_DUE", "CRT_DATE", "CRT_TIME", "CHG_DATE",'
        ' "CHG_TIME", "CHG_USER", "REC_STATUS") VALUES (\'BEN\', \'000000001\', %(n)s,'
        f" 1261125, 1261216, 0, 0, 0, {_NEW}) ON CONFLICT DO NOTHING",
        "STMT_NO", 1_000_000,
    ),
    "CUST_SERVICE": (
        'INSERT INTO {t} ("SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE", "START_DATE",'
        ' "STOP_DATE", "MONTHLY_RATE", "QUANTITY", "SVC_STATUS", "CRT_DATE", "CRT_TIME",'
        ' "CHG_DATE", "CHG_TIME", "CHG_USER", "REC_STATUS") VALUES (\'BEN\', \'000000001\','
        f" 'BENCH', %(n)s, 1261125, 9999999, 1.00, 1, 'A', {_NEW}) ON CONFLICT DO NOTHING",
        "OCCURRENCE", 1,
    ),
}  # fmt: skip


def _key(table: str, number: int) -> dict[str, Any]:
    return {
        "PAYMENT": {"SITE_ID": SITE, "PAYMENT_NO": number},
        "STATEMENT": {"SITE_ID": SITE, "ACCOUNT_NO": ACCOUNT, "STMT_NO": number},
        "CUST_SERVICE": {"SITE_ID": SITE, "ACCOUNT_NO": ACCOUNT, "SERVICE_CODE": "BENCH",
                         "OCCURRENCE": number},
    }[table]  # fmt: skip


@dataclass(frozen=True)
class MarkerTable:
    table: str
    tier: str
    system: str
    mapping: TableMapping
    entity_table: str  # billing.<entity> in warehouse and cache

    def source_key(self, number: int) -> str:
        """The ``_source_key`` the engine gives marker ``number`` (computed by the engine)."""
        return _source_key(self.mapping, self.system, _key(self.table, number))


def marker_tables(catalog: SourceCatalog) -> list[MarkerTable]:
    """The tables of ``catalog`` that get markers."""
    return [
        MarkerTable(
            mapping.table, mapping.tier, catalog.system, mapping, entity_columns(mapping).table
        )
        for mapping in catalog.tables
        if mapping.table in _MARKERS
    ]


def _source_key(mapping: TableMapping, system: str, key: dict[str, Any]) -> str:
    schema = source_schema(mapping)
    values = {name: [key.get(name)] for name in schema.names}
    stamps = {"_cursor_ts": datetime(2026, 1, 1), "_cursor_date": 1260101, "_cursor_time": 0}
    for name, value in stamps.items():
        if name in values:
            values[name] = [value]
    raw = pa.table({name: pa.array(values[name], field.type) for name, field in
                    zip(schema.names, schema, strict=True)})  # fmt: skip
    # Only the key is wanted: any HMAC key will do for the protected columns.
    frame = normalize(
        raw, mapping, system=system, synced_at=datetime.now(UTC), protector=Protector(b"key")
    )
    return str(frame["_source_key"][0])


def insert_marker_rows(conn: psycopg.Connection[Any], schema: str) -> None:
    """The benchmark's account, which the marker rows belong to (the suites check it)."""
    conn.execute(sql.SQL(_ACCOUNT_ROW).format(t=sql.Identifier(schema, "ACCOUNT")))


@dataclass
class MarkerLog:
    """Commit times of the markers of one table, and when each place first showed them."""

    table: MarkerTable
    committed: dict[str, float] = field(default_factory=dict)  # source key -> commit time
    seen: dict[str, dict[str, float]] = field(default_factory=dict)  # place -> key -> time

    def pending(self, place: str) -> list[str]:
        seen = self.seen.get(place, {})
        return [key for key in self.committed if key not in seen][-MAX_PENDING:]

    def observe(self, place: str, keys: list[str], at: float) -> None:
        seen = self.seen.setdefault(place, {})
        for key in keys:
            seen.setdefault(key, at)

    def freshness(self, place: str, *, since: float, until: float) -> list[float]:
        """Seconds from commit to visible in ``place`` of markers committed in the window;
        ``inf`` for those never seen."""
        seen = self.seen.get(place, {})
        return [
            seen.get(key, float("inf")) - committed
            for key, committed in self.committed.items()
            if since <= committed < until
        ]

    def unseen(self, place: str, *, since: float, until: float) -> int:
        seen = self.seen.get(place, {})
        return sum(1 for k, c in self.committed.items() if since <= c < until and k not in seen)


class Markers:
    """The writer and the two observers, as daemon threads."""

    def __init__(
        self,
        *,
        source_url: str,
        warehouse_url: str,
        cache_path: Path,
        catalog: SourceCatalog,
        interval: float,
        warehouse_poll: float = 0.1,
        cache_poll: float = 0.25,
        writer: Callable[[Markers], None] | None = None,
    ) -> None:
        """``writer``: writes the markers on a source other than PostgreSQL (the MariaDB
        source's :func:`~billing_sync.bench.mariadb_source.write_markers`)."""
        self.writer = writer
        self.source_url = source_url
        self.warehouse_url = warehouse_url
        self.cache_path = cache_path
        self.schema = catalog.schema_name
        self.system = catalog.system
        self.interval = interval
        self.logs = {table.table: MarkerLog(table) for table in marker_tables(catalog)}
        self._polls = {"warehouse": warehouse_poll, "cache": cache_poll}
        self._stop_writer = threading.Event()
        self._stop_observers = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.cache_polls = 0
        self.cache_refused = 0
        self.errors: list[str] = []

    def start(self) -> None:
        for target in (self._write, self._watch_warehouse, self._watch_cache):
            thread = threading.Thread(target=self._guard(target), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_writing(self) -> None:
        self._stop_writer.set()

    def stop(self) -> None:
        self._stop_writer.set()
        self._stop_observers.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as error:  # reported, the benchmark carries on
                log.exception("marker thread failed")
                self.errors.append(f"{target.__name__}: {error}")

        return run

    def _next_numbers(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        numbers = {}
        for name, (_, column, floor) in _MARKERS.items():
            if name not in self.logs:
                continue
            row = conn.execute(
                sql.SQL('SELECT max({}) FROM {} WHERE "SITE_ID" = %s').format(
                    sql.Identifier(column), sql.Identifier(self.schema, name)
                ),
                (SITE,),
            ).fetchone()
            numbers[name] = max(floor, int(row[0]) + 1 if row and row[0] is not None else floor)
        return numbers

    def writer_stopped(self) -> bool:
        return self._stop_writer.is_set()

    def wait_writer(self, seconds: float) -> None:
        self._stop_writer.wait(seconds)

    def record_commit(self, table: str, number: int, committed: float) -> None:
        """Marker ``number`` of ``table`` committed at ``committed`` (epoch seconds)."""
        key = self.logs[table].table.source_key(number)
        with self._lock:
            self.logs[table].committed[key] = committed

    def _write(self) -> None:
        if self.writer is not None:
            self.writer(self)
            return
        statements = {
            name: sql.SQL(_MARKERS[name][0]).format(t=sql.Identifier(self.schema, name))
            for name in self.logs
        }
        with psycopg.connect(self.source_url, autocommit=True) as conn:
            numbers = self._next_numbers(conn)
            next_at = time.monotonic()
            while not self._stop_writer.is_set():
                for name, statement in statements.items():
                    try:
                        inserted = conn.execute(statement, {"n": numbers[name]}).rowcount
                    except errors.UniqueViolation:
                        inserted = 0
                    committed = time.time()
                    if not inserted:  # the workload took that number: skip past it
                        numbers = self._next_numbers(conn)
                        continue
                    self.record_commit(name, numbers[name], committed)
                    numbers[name] += 1
                next_at += self.interval
                self._stop_writer.wait(max(0.0, next_at - time.monotonic()))

    def _pending(self, place: str) -> dict[str, list[str]]:
        with self._lock:
            return {name: log.pending(place) for name, log in self.logs.items()}

    def _record(self, place: str, found: dict[str, list[str]], at: float) -> None:
        with self._lock:
            for name, keys in found.items():
                self.logs[name].observe(place, keys, at)

    def _watch_warehouse(self) -> None:
        with psycopg.connect(self.warehouse_url, autocommit=True) as conn:
            while not self._stop_observers.wait(self._polls["warehouse"]):
                found: dict[str, list[str]] = {}
                for name, keys in self._pending("warehouse").items():
                    if not keys:
                        continue
                    try:
                        rows = conn.execute(
                            f"SELECT _source_key FROM {self.logs[name].table.entity_table}"
                            " WHERE _source_system = %s AND _source_key = ANY(%s)",
                            (self.system, keys),
                        ).fetchall()
                    except psycopg.errors.UndefinedTable:
                        continue  # not created yet: the pipeline's setup comes first
                    found[name] = [row[0] for row in rows]
                self._record("warehouse", found, time.time())

    def _watch_cache(self) -> None:
        while not self._stop_observers.wait(self._polls["cache"]):
            pending = {name: keys for name, keys in self._pending("cache").items() if keys}
            if not pending:
                continue
            self.cache_polls += 1
            found: dict[str, list[str]] = {}
            try:
                with duckdb.connect(str(self.cache_path), read_only=True) as con:
                    for name, keys in pending.items():
                        rows = con.execute(
                            f"SELECT _source_key FROM {self.logs[name].table.entity_table}"
                            " WHERE list_contains(?, _source_key)",
                            [keys],
                        ).fetchall()
                        found[name] = [row[0] for row in rows]
            except duckdb.Error:
                self.cache_refused += 1  # the writer holds the file, or it is not there yet
                continue
            self._record("cache", found, time.time())

    def all_seen(self, *, since: float, until: float, places: tuple[str, ...]) -> bool:
        with self._lock:
            return all(
                m.unseen(place, since=since, until=until) == 0
                for m in self.logs.values()
                for place in places
            )

    def seen_after(self, moment: float, place: str, tiers: set[str]) -> bool:
        """Whether some marker committed after ``moment`` showed in ``place``, per tier."""
        with self._lock:
            shown = {
                m.table.tier
                for m in self.logs.values()
                if any(key in m.seen.get(place, {}) for key, c in m.committed.items() if c > moment)
            }
        return tiers <= shown
