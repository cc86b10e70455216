"""The sources the ``snapshot`` scenario reads ``PAYMENT`` from: the PostgreSQL table of
:mod:`.data`, and with ``--source-engine mariadb`` the same rows on MariaDB.

The MariaDB copy is the ICOMS biller's tables on the MariaDB server (the simulator's DDL:
primary key, capture index, ``utf8mb4_bin``), in the database ``bench_snapshot_icoms``,
with ``ACCOUNT`` and ``PAYMENT`` copied row for row from the PostgreSQL table, so that both
legs read the same rows and check against the same expected counts. A re-run reuses the
copy when both tables hold as many rows as on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from billing_sync.bench import data
from billing_sync.bench.mariadb_source import catalog_dir
from billing_sync.simulator import mariadb
from billing_sync.simulator.icoms.schema import TABLES
from billing_sync.simulator.mariadb.seed import INSERT_ROWS, insert_rows

MARIADB_DATABASE = "bench_snapshot_icoms"
COPIED = ("ACCOUNT", data.TABLE)  # the parents first: billing-sync loads them, untimed


@dataclass(frozen=True)
class SnapshotSource:
    """Where the contenders read ``PAYMENT``, in the form each of them takes."""

    engine: str  # "postgresql" or "mariadb"
    label: str  # the report's ``source`` column
    url: str  # SQLAlchemy (MariaDB) or libpq URL: billing-sync's source, dlt's credentials
    cx_url: str  # ConnectorX's
    schema: str  # the schema holding PAYMENT (on MariaDB the database)
    quote: str = '"'  # the engine's identifier quote, for the ConnectorX floor's query
    catalog_dir: str | None = None  # the ICOMS catalog naming ``schema`` (default: the repo's)
    suffix: str = ""  # appended to the contenders' target databases and files

    def server_cpu_seconds(self) -> float | None:
        """CPU seconds the MariaDB server has used, when it runs on this machine (None
        otherwise, and for PostgreSQL, which the bench server measures)."""
        if self.engine != "mariadb" or make_url(self.url).host not in ("127.0.0.1", "localhost"):
            return None
        for process in psutil.process_iter(["name"]):
            if process.info["name"] in ("mariadbd", "mysqld"):
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    return None
                return float(times.user + times.system)
        return None


def postgresql_source(url: str) -> SnapshotSource:
    return SnapshotSource("postgresql", "PostgreSQL", url, data.socket_netloc_url(url),
                          data.SCHEMA)  # fmt: skip


def mariadb_source(server: str, postgres_url: str, work: Path) -> SnapshotSource:
    """The PostgreSQL table's rows on the MariaDB ``server`` (copied unless already there),
    with the ICOMS catalog pointed at its database in ``work``."""
    url = make_url(server).set(database=MARIADB_DATABASE).render_as_string(hide_password=False)
    copy_to_mariadb(postgres_url, url)
    return SnapshotSource(
        "mariadb", "MariaDB", url, data.native_mysql_url(url), MARIADB_DATABASE, quote="`",
        catalog_dir=str(catalog_dir(work / "mariadb", MARIADB_DATABASE)), suffix="_mariadb",
    )  # fmt: skip


def copy_to_mariadb(postgres_url: str, url: str) -> dict[str, int]:
    """Copy :data:`COPIED` from the PostgreSQL ``icoms`` schema into the database of
    ``url`` (the other ICOMS tables stay empty); rows copied per table (none: reused)."""
    server = make_url(url)._replace(database=None).render_as_string(hide_password=False)
    conn = mariadb.connect(server)
    copied: dict[str, int] = {}
    try:
        mariadb.create_schema(conn, schema=MARIADB_DATABASE)
        with psycopg.connect(postgres_url) as source:
            wanted = {name: _pg_count(source, name) for name in COPIED}
            if _counts(conn) == wanted:
                return {}
            with conn.cursor() as cur:
                for name in TABLES:
                    cur.execute(f"TRUNCATE TABLE {_qualified(name)}")
                for name in COPIED:
                    copied[name] = _copy_table(source, cur, name)
                    cur.execute(f"ANALYZE TABLE {_qualified(name)}")
                    cur.fetchall()
            conn.commit()
    finally:
        conn.close()
    return copied


def _qualified(name: str) -> str:
    return f"{mariadb.schema.quote(MARIADB_DATABASE)}.{mariadb.schema.quote(name)}"


def _pg_count(source: psycopg.Connection[Any], name: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(data.SCHEMA, name))
    row = source.execute(query).fetchone()
    return int(row[0]) if row else 0


def _counts(conn: Any) -> dict[str, int]:
    counts = {}
    with conn.cursor() as cur:
        for name in COPIED:
            cur.execute(f"SELECT count(*) FROM {_qualified(name)}")
            counts[name] = int(cur.fetchone()[0])
    conn.commit()
    return counts


def _copy_table(source: psycopg.Connection[Any], cur: Any, name: str) -> int:
    """Rows of ``icoms.name`` in key order, through a server-side cursor, in multi-row
    INSERTs (values as PostgreSQL returns them: ``''`` and NULL stay apart)."""
    table = TABLES[name]
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(map(sql.Identifier, table.column_names)),
        sql.Identifier(data.SCHEMA, name),
        sql.SQL(", ").join(map(sql.Identifier, table.key)),
    )
    rows = 0
    with source.cursor(name=f"copy_{name.lower()}") as reader:
        reader.execute(query)
        while batch := reader.fetchmany(INSERT_ROWS * 5):
            insert_rows(cur, MARIADB_DATABASE, name, batch)
            rows += len(batch)
    return rows
