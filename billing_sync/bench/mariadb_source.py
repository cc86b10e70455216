"""The ``tail`` scenario with the ICOMS biller on MariaDB (``bench tail --source-engine
mariadb``): the same pipeline, markers and measurement as the PostgreSQL source, in the
same run, so the two read side by side.

What differs from the PostgreSQL source, and why:

- the biller is :mod:`billing_sync.simulator.mariadb` (the same 14 tables and seed
  history, seven of the business transactions, one a single Python thread: it reaches
  far fewer rows/s than the PostgreSQL workload's batched statements), in its own
  database ``bench_<name>_icoms``; the catalog's
  ``schema`` is that database (a copy of the catalog in the scenario's folder);
- a marker is its own transaction that takes a locking read on the benchmark's account
  before it reads the clock for its stamp, as the workload's transactions do: the horizon
  (``INNODB_TRX``) then covers it from before its stamp until it commits;
- the first load is done by the pipeline's first run (untimed), and the source footprint
  (``pg_stat_statements`` on PostgreSQL) is not read: the report leaves it empty.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import URL, make_url

from billing_sync.bench import bench_hmac_key
from billing_sync.bench.markers import _ACCOUNT_ROW, _MARKERS, Markers
from billing_sync.capture.cursor import encode_cyymmdd_hhmmss
from billing_sync.config import CATALOG_DIR, SourceCatalog, load_catalogs, load_settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.simulator import mariadb
from billing_sync.simulator.clock import ICOMS_STAMP_VALUES

DEFAULT_SERVER = "mysql+pymysql://root@127.0.0.1:3306"
ROWS_PER_TRANSACTION = 5.0  # the ICOMS mix on MariaDB writes about 5 rows a transaction
_PG_STAMP = ICOMS_STAMP_VALUES.replace("%", "%%") + ", 'BENCH', 'A'"
_STAMP = "%(d)s, %(t)s, %(d)s, %(t)s, 'BENCH', 'A'"


def is_mariadb(url: str) -> bool:
    return make_url(url).get_backend_name() in ("mysql", "mariadb")


def biller_url(server: str, name: str) -> URL:
    """A fresh database for scenario ``name`` on the server (dropped first if left over)."""
    url = make_url(server).set(database=f"bench_{name}_icoms")
    conn = mariadb.connect(url._replace(database=None).render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {mariadb.schema.quote(url.database or '')}")
        conn.commit()
    finally:
        conn.close()
    return url


def seed_biller(url: URL, *, accounts: int) -> dict[str, int]:
    """Seed the ICOMS biller and the benchmark's account the markers belong to."""
    text = url.render_as_string(hide_password=False)
    database = url.database or ""
    conn = mariadb.connect(text.replace(f"/{database}", "", 1))
    try:
        seeded = mariadb.seed(conn, accounts=accounts, schema=database)
        with conn.cursor() as cur:
            d, t, _ = mariadb.schema.stamp(conn)
            cur.execute(_mariadb_text(_ACCOUNT_ROW, database, "ACCOUNT"), {"d": d, "t": t})
        conn.commit()
    finally:
        conn.close()
    return seeded


def catalog_dir(work: Path, database: str) -> Path:
    """The ICOMS catalog with its schema set to ``database``, in ``work/catalogs``."""
    folder = work / "catalogs"
    folder.mkdir(parents=True, exist_ok=True)
    catalog: dict[str, Any] = yaml.safe_load((CATALOG_DIR / "icoms.yaml").read_text())
    catalog["schema"] = database
    (folder / "icoms.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    return folder


def icoms_catalog(directory: Path) -> SourceCatalog:
    (catalog,) = load_catalogs(load_settings(env={}, systems=["icoms"], catalog_dir=directory))
    return catalog


class Workload:
    """The MariaDB biller's workload at ``rate`` changed rows/s, counted like the
    PostgreSQL workload's (``counts()``: rows per table, here one total)."""

    def __init__(self, url: str, *, schema: str, rate: float) -> None:
        self.workload = mariadb.Workload(
            url, schema=schema, rate=max(0.5, rate / ROWS_PER_TRANSACTION)
        )

    def start(self) -> None:
        self.workload.start()

    def stop(self) -> None:
        self.workload.stop()

    def counts(self) -> dict[str, int]:
        return {"icoms.*": int(self.workload.rows)}


# -- markers ---------------------------------------------------------------------------------


def _mariadb_text(pg_text: str, database: str, table: str) -> str:
    """A marker INSERT written for PostgreSQL (``markers._MARKERS``) as MariaDB runs it:
    backquoted names, ``INSERT IGNORE`` for ``ON CONFLICT DO NOTHING``, and the stamp
    read by the marker's own transaction as values instead of PostgreSQL's clock."""
    text = pg_text.replace(_PG_STAMP, _STAMP).replace(" ON CONFLICT DO NOTHING", "")
    text = text.replace("INSERT INTO", "INSERT IGNORE INTO", 1).replace('"', "`")
    return text.replace("{t}", f"{mariadb.schema.quote(database)}.`{table}`")


def write_markers(markers: Markers) -> None:
    """The marker writer on MariaDB (``Markers._write``'s counterpart): one transaction a
    marker, locking the benchmark's account before taking its stamp."""
    database = markers.schema
    quoted = mariadb.schema.quote(database)
    texts = {name: _mariadb_text(_MARKERS[name][0], database, name) for name in markers.logs}
    columns = {name: (_MARKERS[name][1], _MARKERS[name][2]) for name in markers.logs}
    conn = mariadb.connect(markers.source_url)
    try:
        numbers = _next_numbers(conn, quoted, columns)
        next_at = time.monotonic()
        while not markers.writer_stopped():
            for name, text in texts.items():
                with conn.cursor() as cur:
                    cur.execute(f"SELECT 1 FROM {quoted}.`ACCOUNT` WHERE `SITE_ID` = 'BEN'"
                                " AND `ACCOUNT_NO` = '000000001' FOR UPDATE")  # fmt: skip
                    d, t, _ = mariadb.schema.stamp(conn)
                    inserted = cur.execute(text, {"n": numbers[name], "d": d, "t": t})
                conn.commit()
                committed = time.time()
                if not inserted:  # the workload took that number: skip past it
                    numbers = _next_numbers(conn, quoted, columns)
                    continue
                markers.record_commit(name, numbers[name], committed)
                numbers[name] += 1
            next_at += markers.interval
            markers.wait_writer(max(0.0, next_at - time.monotonic()))
    finally:
        conn.close()


def _next_numbers(conn: Any, quoted: str, columns: dict[str, tuple[str, int]]) -> dict[str, int]:
    numbers = {}
    with conn.cursor() as cur:
        for name, (column, floor) in columns.items():
            cur.execute(f"SELECT max(`{column}`) FROM {quoted}.`{name}` WHERE `SITE_ID` = 'BEN'")
            row = cur.fetchone()
            numbers[name] = max(floor, int(row[0]) + 1 if row and row[0] is not None else floor)
    conn.commit()
    return numbers


def rows_past(
    source: str, database: str, marks: list[tuple[str, Any, Any]]
) -> tuple[Any, dict[str, int]]:
    """The server's clock in ICOMS local time, and the rows past each table's watermark
    (``tail.backlog`` on MariaDB)."""
    rows: dict[str, int] = {}
    conn = mariadb.connect(source)
    try:
        now = mariadb.schema.local_now(conn)
        with conn.cursor() as cur:
            for table, cursor_ts, _ in marks:
                if cursor_ts is None:
                    continue
                d, t = encode_cyymmdd_hhmmss(cursor_ts)
                cur.execute(
                    f"SELECT count(*) FROM {mariadb.schema.quote(database)}.`{table}`"
                    " WHERE `CHG_DATE` > %s OR (`CHG_DATE` = %s AND `CHG_TIME` > %s)",
                    (d, d, t),
                )
                rows[table] = int(cur.fetchone()[0])
        conn.commit()
    finally:
        conn.close()
    return now, rows


def prepare(
    work: Path, name: str, *, server: str, accounts: int, warehouse: str, settings: dict[str, Any]
) -> tuple[str, SourceCatalog, dict[str, Any], dict[str, int]]:
    """The seeded MariaDB biller of scenario ``name`` and the engine's tables in the
    warehouse: its URL, its catalog, the pipeline's settings (with ``catalog_dir``) and
    the seeded row counts. The pipeline's first run does the first load."""
    url = biller_url(server, name)
    seeded = seed_biller(url, accounts=accounts)
    directory = catalog_dir(work, url.database or "")
    source = url.render_as_string(hide_password=False)
    engine_settings = load_settings(
        env={}, state_dir=work / "state", source_url=source, warehouse_url=warehouse,
        cache_path=work / "cache.duckdb", hmac_key=bench_hmac_key(), catalog_dir=directory,
    )  # fmt: skip
    with SyncEngine.from_settings(engine_settings) as engine:
        engine.setup()  # the tables the markers are watched in
    return source, icoms_catalog(directory), {**settings, "catalog_dir": str(directory)}, seeded
