"""What verify's row hash costs per engine (docs/sources.md, "The row hash contract").

Three ways to get one key range's ``count`` and hash sum over N rows, timed as wall clock
and as CPU seconds of the database server process (``/proc/<pid>/stat``, so other
processes' load counts less) and of this client:

1. MariaDB hashes in SQL (the engine-neutral contract, as verify runs it);
2. the Python fallback: the rows fetched in key order and hashed here by
   :func:`billing_sync.reconcile.row_hash.row_hash`;
3. PostgreSQL: ``hashtextextended`` (PostgreSQL sources) against the MD5 contract (what
   the warehouse computes when the source is another engine), over the same rows.

Usage: ``python scripts/measure_row_hash.py [ROWS]`` with MariaDB on 127.0.0.1:3306
(root) and PostgreSQL on 127.0.0.1:5432 (postgres, trust). It creates and drops its own
database on each.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pymysql

from billing_sync.config import TableMapping
from billing_sync.reconcile import hashing, portable
from billing_sync.reconcile.hashing import EVERYTHING, build_range_aggregate
from billing_sync.reconcile.row_hash import CANONICAL, row_hash
from billing_sync.source.adapter_session import AdapterConnection

DATABASE = "bs_measure_row_hash"
MAPPING = TableMapping.model_validate(
    {
        "table": "T",
        "entity": "t",
        "key": ["K"],
        "cursor": "TS",
        "columns": [
            {"source": "K", "target": "k", "type": "bigint"},
            {"source": "NAME", "target": "name", "type": "text"},
            {"source": "AMOUNT", "target": "amount", "type": "decimal(11,2)"},
            {"source": "N", "target": "n", "type": "integer"},
            {"source": "TS", "target": "ts", "type": "timestamp"},
        ],
    }
)
TYPES = ["bigint", "text", "decimal(11,2)", "integer", "timestamp", "timestamp", CANONICAL]


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(server_pid: int, run: Callable[[], Any]) -> tuple[Any, float, float, float]:
    wall, client, server = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
    value = run()
    return (
        value,
        time.perf_counter() - wall,
        cpu_seconds(server_pid) - server,
        time.process_time() - client,
    )


def mariadb_pid() -> int:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as comm:
                    if comm.read().strip() in ("mariadbd", "mysqld"):
                        return int(name)
            except OSError:
                continue
    raise RuntimeError("no mariadbd process")


def main(rows: int) -> None:
    fill = (
        f"SELECT seq, CONCAT('customer ', seq), seq * 1.25, seq MOD 1000,"
        f" TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{rows}"
    )
    my = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with my.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cur.execute(f"CREATE DATABASE {DATABASE}")
        cur.execute(f"USE {DATABASE}")  # seq_1_to_N is a table of the current database
        cur.execute(
            f"CREATE TABLE {DATABASE}.T (K BIGINT PRIMARY KEY, NAME VARCHAR(40),"
            " AMOUNT DECIMAL(11,2), N INT, TS DATETIME(6)) DEFAULT CHARSET=utf8mb4"
        )
        cur.execute(f"INSERT INTO {DATABASE}.T {fill}")
    session = AdapterConnection(
        f"mysql+pymysql://root@127.0.0.1:3306/{DATABASE}", timezone=None, statement_timeout=600
    )
    assert session.adapter is not None
    side = portable.source_side(
        MAPPING, schema=DATABASE, pending_after=None, adapter=session.adapter
    )
    query = build_range_aggregate(side, EVERYTHING)
    pid = mariadb_pid()

    def in_sql() -> tuple[int, int]:
        count, total = session.one(query.text, query.params)
        return int(count), int(total)

    def in_python() -> tuple[int, int]:
        count = total = 0
        text = f'SELECT "K", "NAME", "AMOUNT", "N", "TS" FROM "{DATABASE}"."T" ORDER BY "K"'
        with session._read_only():
            result = session.connection.execution_options(stream_results=True).exec_driver_sql(
                session._timed(text)
            )
            while chunk := result.fetchmany(20_000):  # bounded memory: one slice at a time
                for row in chunk:  # the parts verify hashes: columns, stamp, deleted flag
                    total += row_hash([*row, row[4], "f"], TYPES)
                count += len(chunk)
            result.close()
        return count, total

    print(f"rows: {rows}; load average {os.getloadavg()}")
    for name, run in (
        ("mariadb, hashed in SQL", in_sql),
        ("mariadb rows, hashed in Python", in_python),
    ):
        best = min((timed(pid, run) for _ in range(2)), key=lambda r: r[1])
        print(f"{name}: {best[0]} wall {best[1]:.2f} s, server CPU {best[2]:.2f} s,", end="")
        print(f" client CPU {best[3]:.2f} s")
    session.close()
    with my.cursor() as cur:
        cur.execute(f"DROP DATABASE {DATABASE}")
    my.close()

    pg = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    pg.execute("DROP TABLE IF EXISTS measure_t")
    pg.execute(
        'CREATE TABLE measure_t ("K" bigint PRIMARY KEY, "NAME" varchar(40),'
        ' "AMOUNT" numeric(11,2), "N" int, "TS" timestamp(6))'
    )
    pg.execute(
        "INSERT INTO measure_t SELECT g, 'customer ' || g, g * 1.25, g %% 1000,"
        " TIMESTAMP '2026-01-01' + g * interval '1 second' FROM generate_series(1, %s) AS g",
        (rows,),
    )
    pg.execute("VACUUM ANALYZE measure_t")
    backend = pg.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    native = hashing.source_side(MAPPING, schema="public", pending_after=None)
    contract = portable.source_side(
        MAPPING, schema="public", pending_after=None,
        adapter=portable._WAREHOUSE,  # the warehouse's compiler: PostgreSQL's contract SQL
    )  # fmt: skip
    for name, side in (
        ("postgresql hashtextextended", native),
        ("postgresql MD5 contract", contract),
    ):
        query = build_range_aggregate(side, EVERYTHING)
        text = query.text.replace('"public"."T"', "measure_t")

        def run(text: str = text, params: dict[str, Any] = query.params) -> Any:
            return pg.execute(text, params).fetchone()

        best = min((timed(backend, run) for _ in range(3)), key=lambda r: r[1])
        print(f"{name}: {best[0]} wall {best[1]:.2f} s, server CPU {best[2]:.2f} s")
    pg.execute("DROP TABLE measure_t")
    pg.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
