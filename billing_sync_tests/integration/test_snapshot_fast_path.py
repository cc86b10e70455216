"""The first load's fast path: reading by COPY, reading ahead, COPY straight into an empty
target, the cache fed several chunks at a time. Its output must equal the merge path's,
and a crash between chunks must resume with nothing lost or loaded twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import psycopg
import pyarrow as pa
import pytest
import yaml
from polars.testing import assert_frame_equal

from billing_sync.capture.snapshot import build_snapshot_query
from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import entities_of
from billing_sync.load.copy_in import copy_rows
from billing_sync.load.warehouse import Warehouse
from billing_sync.postgres import DatabaseUrls, drop_database, ensure_database
from billing_sync.source.schema import source_schema
from billing_sync.source.session import SourceSession
from billing_sync.sql import BoundQuery
from billing_sync_tests.integration.helpers import (
    assert_parity,
    parity,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration

# Columns that differ between two loads of the same rows by construction.
PER_LOAD = ["_synced_at", "_batch_id"]


@pytest.fixture
def second_warehouse(pg_server_url: str, databases: DatabaseUrls) -> Iterator[DatabaseUrls]:
    name = f"wh2_{uuid.uuid4().hex[:10]}"
    yield DatabaseUrls(source=databases.source, warehouse=ensure_database(pg_server_url, name))
    drop_database(pg_server_url, name)


def _first_load(engine: SyncEngine) -> None:
    engine.setup()
    for catalog, mapping in engine.tables():
        while engine.sync_table(catalog, mapping).more_waiting:
            pass
    engine.snapshot_io.feed.flush()


def _warehouse_frames(url: str, engine: SyncEngine) -> dict[str, pl.DataFrame]:
    frames = {}
    with psycopg.connect(url) as conn:
        for columns in entities_of(engine.catalogs).values():
            names = ", ".join(f'"{n}"' for n in columns.all if n not in PER_LOAD)
            cursor = conn.execute(f"SELECT {names} FROM {columns.table} ORDER BY _source_key")
            frames[columns.entity] = pl.DataFrame(
                cursor.fetchall(), schema=[d.name for d in cursor.description or []], orient="row"
            )
    return frames


def _cache_frames(path: Path, engine: SyncEngine) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            columns.entity: con.sql(
                f"SELECT * EXCLUDE (_synced_at, _batch_id) FROM {columns.table}"
                " ORDER BY _source_key"
            ).pl()
            for columns in entities_of(engine.catalogs).values()
        }


def test_the_bulk_path_loads_what_the_merge_path_loads(
    databases: DatabaseUrls,
    second_warehouse: DatabaseUrls,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeded_source(databases, accounts=60)
    with psycopg.connect(databases.source, autocommit=True) as conn:  # '' and NULL apart
        conn.execute(
            'UPDATE "icoms"."ACCOUNT" SET "ACCT_NAME" = \'\' WHERE rtrim("ACCOUNT_NO") LIKE \'%1\''
        )
        conn.execute(
            'UPDATE "icoms"."ACCOUNT" SET "ACCT_NAME" = NULL WHERE rtrim("ACCOUNT_NO") LIKE \'%2\''
        )
        conn.execute(
            'UPDATE "icoms"."ACCOUNT" SET "ACCT_NAME" = \'a "quoted", name; with, commas\''
            " WHERE rtrim(\"ACCOUNT_NO\") LIKE '%3'"
        )
    capture = {"delay_seconds": 0, "snapshot_rows": 97}
    fast = settings_for(databases, tmp_path / "fast", capture=capture)
    with SyncEngine.from_settings(fast) as engine:
        engine.snapshot_io.feed.min_rows = 150  # several cache applies per table
        _first_load(engine)
        with psycopg.connect(databases.warehouse) as conn:
            bulk = conn.execute("SELECT bool_and(bulk) FROM billing_sync.snapshot").fetchone()
        assert bulk == (True,)
        fast_rows = _warehouse_frames(databases.warehouse, engine)
        assert_parity(engine)
    fast_cache = _cache_frames(fast.resolved_cache_path, engine)

    # The reference: every chunk through the temporary table and the ON CONFLICT merge.
    monkeypatch.setattr(Warehouse, "_copy_new", lambda *args: False)
    slow = settings_for(second_warehouse, tmp_path / "slow", capture=capture)
    with SyncEngine.from_settings(slow) as engine:
        _first_load(engine)
        slow_rows = _warehouse_frames(second_warehouse.warehouse, engine)
    slow_cache = _cache_frames(slow.resolved_cache_path, engine)

    assert fast_rows.keys() == slow_rows.keys()
    for entity, frame in fast_rows.items():
        assert frame.height > 0, entity
        assert_frame_equal(frame, slow_rows[entity])
        assert_frame_equal(fast_cache[entity], slow_cache[entity])
    names = fast_rows["billing_account"].get_column("name")
    assert (names == "").sum() > 0 and names.null_count() > 0
    assert names.str.contains('"quoted", name').sum() > 0


def test_a_key_already_there_makes_the_chunk_merge(databases: DatabaseUrls, tmp_path: Path) -> None:
    """A row written while the first load runs (a repair, a released quarantine row): the
    bulk COPY of the chunk holding its key is undone and the chunk merges, as every later
    one does."""
    seeded_source(databases, accounts=200)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0, "snapshot_rows": 50})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        catalog, mapping = next((c, m) for c, m in engine.tables() if m.table == "ACCOUNT")
        first = engine.snapshot_chunk(catalog, mapping, kind="initial")
        assert first.inserted == 50
        query = build_snapshot_query(mapping, schema=catalog.schema_name, after_key=None,
                                     limit=120)  # fmt: skip
        raw = engine.source(catalog.system).read_arrow(query, source_schema(mapping))
        rows, _ = engine.prepare(raw.slice(119, 1), catalog, mapping, polars_validation=True)
        engine.warehouse.commit_rows(system=catalog.system, mapping=mapping, rows=rows,
                                     kind="repair")  # fmt: skip
        while engine.sync_table(catalog, mapping).more_waiting:
            pass
        engine.snapshot_io.feed.flush()
        with psycopg.connect(databases.warehouse) as conn:
            bulk = conn.execute(
                "SELECT bulk FROM billing_sync.snapshot WHERE source_table = 'ACCOUNT'"
            ).fetchone()
            chunks = conn.execute(
                "SELECT inserted, updated FROM billing_sync.batch_log"
                " WHERE kind = 'initial' ORDER BY batch_id"
            ).fetchall()
        assert bulk == (False,)
        assert chunks[2] == (49, 0), chunks  # the repaired row was not written again
        account = next(r for r in parity(engine) if r.table == "ACCOUNT")
        assert account.equal, account.differences


def test_a_first_load_killed_between_chunks_resumes_after_the_last_one(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=60)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0, "snapshot_rows": 40})
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", by_alias=True)))
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
    command = [sys.executable, "-m", "billing_sync.cli", "--config", str(config), "sync",
               "--once", "--tier", "priority"]  # fmt: skip
    crashed = subprocess.run(
        command, env={**os.environ, "BILLING_SYNC_CRASH_AT": "after_snapshot_chunk"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    with psycopg.connect(databases.warehouse) as conn:
        after_crash = conn.execute(
            "SELECT source_table, rows_done FROM billing_sync.snapshot WHERE status = 'running'"
        ).fetchall()
    assert after_crash and all(done == 40 for _, done in after_crash), after_crash
    with SyncEngine.from_settings(settings) as engine:
        engine.drain(until=source_now(databases.source), timeout=300)
        assert_parity(engine)
    with psycopg.connect(databases.warehouse) as conn:
        loaded = dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT source_table, sum(rows_read) FROM billing_sync.batch_log"
                " WHERE kind = 'initial' GROUP BY 1"
            ).fetchall()
        )
        snapshots = dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT source_table, rows_done FROM billing_sync.snapshot WHERE status = 'done'"
            ).fetchall()
        )
    assert loaded == snapshots  # no chunk loaded twice, none skipped


_TRICKY = """
CREATE TABLE tricky (id int PRIMARY KEY, t text, c char(5), n numeric(12,2), d date,
                     ts timestamp(6), b bigint, f boolean);
INSERT INTO tricky VALUES
  (1, '', '', 0.01, '2024-02-29', '2024-01-01 00:00:00.000001', -9007199254740993, true),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, e'a "quoted", multi\\nline, \\\\ backslash', 'ab', -9999999999.99, '0001-01-01',
   '9999-12-31 23:59:59.999999', 9223372036854775807, false),
  (4, 'caf\u00e9 \u20ac \U0001f600', '  x  ', 12.5, '1999-12-31', '1999-12-31 23:59:59', 0, NULL)
"""
TRICKY_SCHEMA = pa.schema([
    ("id", pa.int32()), ("t", pa.string()), ("c", pa.string()), ("n", pa.decimal128(12, 2)),
    ("d", pa.date32()), ("ts", pa.timestamp("us")), ("b", pa.int64()), ("f", pa.bool_()),
])  # fmt: skip


def test_reading_by_copy_equals_reading_by_cursor(databases: DatabaseUrls) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(_TRICKY)
    query = BoundQuery("SELECT * FROM tricky WHERE id > %(after)s ORDER BY id", {"after": 0})
    with SourceSession(databases.source) as session:
        by_copy = session.read_arrow(query, TRICKY_SCHEMA)
        session.copy_reads = False  # read through the cursor
        by_cursor = session.read_arrow(query, TRICKY_SCHEMA)
    assert by_copy.equals(by_cursor), (by_copy.to_pylist(), by_cursor.to_pylist())
    assert by_copy.column("t").to_pylist()[:2] == ["", None]


@pytest.mark.parametrize("binary", [True, False])
def test_copy_in_keeps_every_value(databases: DatabaseUrls, binary: bool) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(_TRICKY)
        with SourceSession(databases.source) as session:
            rows = session.read_arrow(BoundQuery("SELECT * FROM tricky", {}), TRICKY_SCHEMA)
        conn.execute("CREATE TABLE copied (LIKE tricky)")
        with conn.transaction():
            copy_rows(conn, "copied", rows, TRICKY_SCHEMA, binary=binary)
        differing = conn.execute(
            "SELECT count(*) FROM ((TABLE tricky EXCEPT ALL TABLE copied)"
            " UNION ALL (TABLE copied EXCEPT ALL TABLE tricky)) AS d"
        ).fetchone()
    assert differing == (0,)
