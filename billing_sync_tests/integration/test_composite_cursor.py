"""A biller whose change stamp is (CHG_DATE CYYMMDD, CHG_TIME HHMMSS) in local time:
capture over the raw columns' index, resuming inside one second, parity, the horizon in
the catalog's timezone."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from billing_sync.capture.cursor import encode_cyymmdd_hhmmss
from billing_sync.capture.query import build_change_query, build_region_keys_query
from billing_sync.capture.window import Cursor, Window
from billing_sync.config import SourceCatalog
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.verify import format_verification, verify_table
from billing_sync.validate.polars_suite import PolarsValidator
from billing_sync.validate.runner import Validator
from billing_sync_tests.integration.helpers import assert_parity, settings_for

pytestmark = pytest.mark.integration
ZONE = "America/Chicago"
CATALOG = SourceCatalog.model_validate(
    {
        "system": "legacy",
        "schema": "legacy",
        "timezone": ZONE,
        "tables": [
            {
                "table": "LEDGER",
                "entity": "ledger_entry",
                "tier": "priority",
                "key": ["SITE_ID", "ENTRY_NO"],
                "cursor": ["CHG_DATE", "CHG_TIME"],
                "cursor_format": "cyymmdd_hhmmss",
                "columns": [
                    {"source": "SITE_ID", "target": "site_id", "type": "text", "converter": "trim"},
                    {"source": "ENTRY_NO", "target": "entry_number", "type": "bigint"},
                    {"source": "AMOUNT", "target": "amount", "type": "decimal(12,2)"},
                    {
                        "source": "BAL",
                        "target": "balance",
                        "type": "decimal(12,2)",
                        "converter": {"implied_decimal": 2},
                    },
                    {"source": "NOTE", "target": "note", "type": "text", "converter": "latin1"},
                    {"source": "CHG_DATE", "target": "changed_date", "type": "bigint"},
                    {"source": "CHG_TIME", "target": "changed_time", "type": "bigint"},
                ],
            }
        ],
    }
)
SUITE = """
entity: ledger_entry
description: test entity
quarantine: {max_bad_share: 0.5, min_bad_rows: 5}
expectations:
  - {type: expect_column_values_to_not_be_null, column: _source_key}
"""
INSERT = (
    'INSERT INTO legacy."LEDGER" ("SITE_ID", "ENTRY_NO", "AMOUNT", "BAL", "NOTE", "CHG_DATE",'
    " \"CHG_TIME\") SELECT %(site)s, %(first)s + n, n, n * 7, convert_to('Caf' || chr(233)"
    " || n, 'LATIN1'), %(date)s, %(time)s FROM generate_series(0, %(rows)s - 1) n"
)


def _create(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(
        "CREATE SCHEMA legacy;"
        ' CREATE TABLE legacy."LEDGER" ("SITE_ID" char(3) NOT NULL, "ENTRY_NO" bigint NOT NULL,'
        ' "AMOUNT" numeric(12,2), "BAL" integer, "NOTE" bytea,'
        ' "CHG_DATE" integer NOT NULL, "CHG_TIME" integer NOT NULL,'
        ' PRIMARY KEY ("SITE_ID", "ENTRY_NO"));'
        ' CREATE INDEX "LEDGER_CHG" ON legacy."LEDGER" ("CHG_DATE", "CHG_TIME", "SITE_ID",'
        ' "ENTRY_NO")'
    )


def _local_now(conn: psycopg.Connection[tuple[object, ...]]) -> datetime:
    row = conn.execute(
        "SELECT (clock_timestamp() AT TIME ZONE %s)::timestamp(6)", (ZONE,)
    ).fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def _insert(
    conn: psycopg.Connection[tuple[object, ...]], *, site: str, first: int, rows: int,
    stamp: tuple[int, int],
) -> None:  # fmt: skip
    conn.execute(
        INSERT, {"site": site, "first": first, "rows": rows, "date": stamp[0], "time": stamp[1]}
    )


def _engine(databases: DatabaseUrls, tmp_path: Path) -> SyncEngine:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "ledger_entry.yaml").write_text(SUITE)
    settings = settings_for(
        databases, tmp_path, systems=["legacy"],
        capture={"delay_seconds": 0, "batch_rows": 1000, "snapshot_rows": 700,
                 "lookback_seconds": 0},
    )  # fmt: skip
    return SyncEngine(
        settings, [CATALOG], databases, validator=Validator(suites_dir=suites),
        polars_validator=PolarsValidator(suites_dir=suites),
    )  # fmt: skip


def test_composite_cursor_captures_local_stamps_in_batches_inside_one_second(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        _create(conn)
        now = _local_now(conn)
        past = encode_cyymmdd_hhmmss(now.replace(hour=0, minute=0, second=1))
        _insert(conn, site="001", first=0, rows=1500, stamp=past)
        _insert(conn, site="002", first=0, rows=3, stamp=(1250231, 246000))  # odd stamps
    with _engine(databases, tmp_path) as engine:
        engine.setup()
        session = engine.source("legacy")
        horizon = session.horizon(delay=timedelta(0))
        assert abs((horizon.at - now).total_seconds()) < 60  # local time, not UTC
        with psycopg.connect(databases.source, autocommit=True) as conn:
            until = _local_now(conn).replace(microsecond=0)
        engine.drain(until=until, timeout=120)  # the first load (snapshot chunks)
        # Tail: 2,500 rows sharing one second, read 1,000 at a time
        with psycopg.connect(databases.source, autocommit=True) as conn:
            stamp = encode_cyymmdd_hhmmss(_local_now(conn))
            _insert(conn, site="003", first=0, rows=2500, stamp=stamp)
            conn.execute('UPDATE legacy."LEDGER" SET "AMOUNT" = -1, "CHG_DATE" = %s,'
                         ' "CHG_TIME" = %s WHERE "SITE_ID" = \'001\' AND "ENTRY_NO" < 10',
                         stamp)  # fmt: skip
        stamped_at = datetime.strptime(f"{stamp[0] + 19_000_000}{stamp[1]:06d}", "%Y%m%d%H%M%S")
        reads = []
        while True:  # rows stamped in second s are complete once the horizon passes s
            batch = engine.sync_table(CATALOG, CATALOG.tables[0])
            reads.append(batch.rows_read)
            caught_up = batch.caught_up_to
            if caught_up is not None and caught_up > stamped_at and not batch.more_waiting:
                break
            assert len(reads) < 200, reads
        assert sum(reads) == 2510
        assert max(reads) == 1000
        engine.catch_up_cache()
        assert_parity(engine)
        with psycopg.connect(databases.warehouse) as conn:
            row = conn.execute(
                "SELECT min(_source_version), max(_source_version), count(*)"
                " FROM billing.ledger_entry WHERE site_id = '002'"
            ).fetchone()
        assert row == (datetime(2025, 2, 28, 23, 59, 59), datetime(2025, 2, 28, 23, 59, 59), 3)
        with psycopg.connect(databases.warehouse) as conn:
            sample = conn.execute(
                "SELECT balance::text, note FROM billing.ledger_entry"
                " WHERE site_id = '003' AND entry_number = 12"
            ).fetchone()
        assert sample == ("0.84", "Café12")
        # verify (key-range hashing) agrees, and finds a row the warehouse lost
        catalog, mapping = engine.checked(CATALOG, CATALOG.tables[0])
        clean = verify_table(engine, catalog, mapping, repair=False, check_cache=False)
        assert clean.equal, format_verification(clean)
        with psycopg.connect(databases.warehouse, autocommit=True) as conn:
            conn.execute("DELETE FROM billing.ledger_entry WHERE _source_key = '003|12'")
            conn.execute("UPDATE billing.ledger_entry SET amount = 99 WHERE _source_key = '003|13'")
        found = verify_table(engine, catalog, mapping, repair=True, check_cache=False)
        assert found.warehouse.missing == ["003|12"], format_verification(found)
        assert found.warehouse.stale == ["003|13"], format_verification(found)
        again = verify_table(engine, catalog, mapping, repair=False, check_cache=False)
        assert again.equal, format_verification(again)


def test_composite_queries_use_the_raw_column_index(databases: DatabaseUrls) -> None:
    mapping = CATALOG.tables[0]
    with psycopg.connect(databases.source, autocommit=True) as conn:
        _create(conn)
        conn.execute(
            'INSERT INTO legacy."LEDGER" ("SITE_ID", "ENTRY_NO", "AMOUNT", "CHG_DATE", "CHG_TIME")'
            " SELECT lpad((n % 7)::text, 3, '0'), n, 1,"
            " 1260000 + (n / 5000) % 12 * 100 + 101 + (n / 400) % 28, n % 235959"
            " FROM generate_series(1, 100000) n"
        )
        conn.execute('ANALYZE legacy."LEDGER"')
        window = Window(Cursor(datetime(2026, 6, 5, 3, 0, 0), ("003", 123)),
                        datetime(2026, 6, 9), 1000)  # fmt: skip
        for query in (
            build_change_query(mapping, schema="legacy", window=window),
            build_region_keys_query(
                mapping, schema="legacy", since=datetime(2026, 6, 5), until=datetime(2026, 6, 6),
                limit=1000,
            ),
        ):  # fmt: skip
            plan = "\n".join(
                row[0] for row in conn.execute("EXPLAIN " + query.text, query.params).fetchall()
            )
            assert "LEDGER_CHG" in plan and "Seq Scan" not in plan, plan


def test_the_sql_floor_of_a_stamp_matches_the_polars_decode(databases: DatabaseUrls) -> None:
    """verify hashes the stamp in SQL on the source; it must land where the sync's decode
    (the warehouse's ``_source_version``) does, odd stamps included."""
    import polars as pl

    from billing_sync.capture.cursor import (
        decode_cyymmdd_hhmmss,
        encode_cyymmdd_hhmmss,
        packed_stamp_sql,
    )

    pairs = [(d, t) for d in (0, 100, 1250001, 1250100, 1250231, 1251300, 1240229, 1230229,
                              1251124, 9999999, 99999999, -3)
             for t in (0, 70509, 235959, 246000, 126000, 125960, 999999, -1)]  # fmt: skip
    pairs.append((None, None))
    with psycopg.connect(databases.source, autocommit=True) as conn:
        sql = packed_stamp_sql("d", "t")
        rows = conn.execute(
            f"SELECT {sql}, to_char(make_timestamp(1900, 1, 1, 0, 0, 0), 'YYYY')"
            " FROM unnest(%s::bigint[], %s::bigint[]) AS x(d, t)",
            ([p[0] for p in pairs], [p[1] for p in pairs]),
        ).fetchall()
    decoded = (
        pl.DataFrame({"d": [p[0] for p in pairs], "t": [p[1] for p in pairs]},
                     schema={"d": pl.Int64, "t": pl.Int64})
        .select(decode_cyymmdd_hhmmss(pl.col("d"), pl.col("t")))
        .to_series()
        .to_list()
    )  # fmt: skip
    for pair, (packed, _), value in zip(pairs, rows, decoded, strict=True):
        expected = int(value.strftime("%Y%m%d%H%M%S")) - 19_000_000_000_000
        assert packed == expected, (pair, packed, value)
        if value.year >= 1900:
            date, time = encode_cyymmdd_hhmmss(value)
            assert packed == date * 1_000_000 + time
