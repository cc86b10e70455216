"""NULL change timestamps (Amdocs), out-of-order batches, backfill resume, and the change query's
index use on a 100k-row table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
import yaml

from billing_sync.capture.query import build_change_query
from billing_sync.capture.snapshot import build_snapshot_query
from billing_sync.capture.window import Cursor, Window
from billing_sync.config import load_catalog
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_CHANGED_AT_SQL
from billing_sync.source.schema import source_schema
from billing_sync.transform.normalize import normalize
from billing_sync.transform.protect import Protector
from billing_sync_tests.integration.helpers import (
    assert_parity,
    drained_engine,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration
PAYMENT = load_catalog("icoms").by_table["PAYMENT"]
AMDOCS_PAYMENT = load_catalog("amdocs").by_table["PAYMENT"]


def test_a_row_with_a_null_change_timestamp_is_captured(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with drained_engine(
        databases,
        tmp_path,
        accounts=20,
        systems=("amdocs",),
        timezone="UTC",
        capture={"delay_seconds": 0},
    ) as engine:
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(  # never updated since its insert: SYS_UPDATE_DATE is NULL
                'INSERT INTO "amdocs"."PAYMENT" ("ENT_SEQ_NO", "BAN", "DEPOSIT_DATE",'
                ' "ACTV_AMT", "PYM_METHOD", "PYM_STATUS", "CR_CARD_NO", "SYS_CREATION_DATE",'
                ' "SYS_UPDATE_DATE", "OPERATOR_ID") SELECT 800000001, "BAN", current_date, 5,'
                " 'CA', 'A', NULL, date_trunc('second', now() AT TIME ZONE 'UTC'), NULL, 1"
                ' FROM "amdocs"."BILLING_ACCOUNT" LIMIT 1'
            )
        engine.drain(until=source_now(databases.source, timezone="UTC"))
        with psycopg.connect(databases.warehouse) as conn:
            found = conn.execute(
                "SELECT changed_at, _source_version FROM billing.payment"
                " WHERE payment_number = 800000001"
            ).fetchall()
        assert len(found) == 1 and found[0][0] is None and found[0][1] is not None
        assert_parity(engine)


def _version(ts: datetime, amount: str) -> pa.Table:
    row = {
        "ENT_SEQ_NO": 7, "BAN": "20000001", "DEPOSIT_DATE": ts.date(), "ACTV_AMT": float(amount),
        "PYM_METHOD": "CH", "PYM_STATUS": "A", "CR_CARD_NO": None, "SYS_CREATION_DATE": ts,
        "SYS_UPDATE_DATE": ts, "OPERATOR_ID": "1", "_cursor_ts": ts,
    }  # fmt: skip
    raw = pa.Table.from_pylist([row], schema=source_schema(AMDOCS_PAYMENT))
    protector = Protector.for_catalogs(
        [load_catalog("amdocs")], hmac_key=os.environ["BILLING_SYNC_HMAC_KEY"]
    )
    frame = normalize(raw, AMDOCS_PAYMENT, system="amdocs", synced_at=ts, protector=protector)
    return frame.to_arrow()


def test_batches_applied_out_of_order_or_replayed_change_nothing(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=2, systems=("amdocs",))
    with SyncEngine.from_settings(settings_for(databases, tmp_path, systems=["amdocs"])) as engine:
        engine.setup()
        t1 = datetime(2026, 11, 1, 10, 0, 0)
        older, newer = _version(t1, "1.00"), _version(t1 + timedelta(seconds=1), "2.00")
        commit = engine.warehouse.commit_rows
        payment = AMDOCS_PAYMENT
        assert commit(system="amdocs", mapping=payment, rows=newer, kind="tail").inserted == 1
        late = commit(system="amdocs", mapping=payment, rows=older, kind="tail")
        again = commit(system="amdocs", mapping=payment, rows=newer, kind="tail")
        assert (late.inserted, late.updated, again.inserted, again.updated) == (0, 0, 0, 0)
        with psycopg.connect(databases.warehouse) as conn:
            amounts = conn.execute(
                "SELECT amount::text FROM billing.payment WHERE _source_key = '7'"
            ).fetchall()
        assert amounts == [("2.00",)]


def test_the_change_query_walks_the_cursor_index_on_100k_rows(databases: DatabaseUrls) -> None:
    seeded_source(databases, accounts=2)
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO "icoms"."PAYMENT" ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE",'
            ' "AMOUNT", "PAY_METHOD", "PAY_STATUS", "CARD_NO", "CARD_EXP", "CVV", "CRT_DATE",'
            ' "CRT_TIME", "CHG_DATE", "CHG_TIME", "CHG_USER", "REC_STATUS")'
            " SELECT '00' || (1 + n % 5), 700000000 + n, '00000001', 1261101, 1, 'CA', 'P',"
            " NULL, NULL, NULL, d, t, d, t, 'GEN', 'A'"
            " FROM generate_series(1, 100000) AS n, LATERAL (SELECT"
            " to_char(localtimestamp - make_interval(secs => 100000 - n), 'YYYYMMDD')::int"
            " - 19000000 AS d,"
            " to_char(localtimestamp - make_interval(secs => 100000 - n), 'HH24MISS')::int AS t) s"
        )
        conn.execute('ANALYZE "icoms"."PAYMENT"')
        cursor_row = conn.execute(
            f'SELECT {ICOMS_CHANGED_AT_SQL}, "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT"'
            ' ORDER BY "CHG_DATE" DESC, "CHG_TIME" DESC, 2 DESC, 3 DESC OFFSET 5000 LIMIT 1'
        ).fetchone()
        assert cursor_row is not None
        window = Window(Cursor(cursor_row[0], (cursor_row[1], cursor_row[2])),
                        datetime.now() + timedelta(days=1), 1000)  # fmt: skip
        for query in (
            build_change_query(PAYMENT, schema="icoms", window=window),
            build_snapshot_query(PAYMENT, schema="icoms", after_key=("003", 700050000), limit=1000),
        ):
            plan = "\n".join(
                row[0] for row in conn.execute("EXPLAIN " + query.text, query.params).fetchall()
            )
            assert "Index" in plan and "Seq Scan" not in plan, plan


def test_a_backfill_killed_after_a_chunk_resumes_from_it(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=60)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0, "snapshot_rows": 100})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", by_alias=True)))
    command = [sys.executable, "-m", "billing_sync.cli", "--config", str(config),
               "backfill", "icoms.PAYMENT", "--where", '"SITE_ID" <> \'005\'']  # fmt: skip
    crashed = subprocess.run(
        command, env={**os.environ, "BILLING_SYNC_CRASH_AT": "after_snapshot_chunk"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "rows/s" in resumed.stderr  # the progress line
    with psycopg.connect(databases.source) as conn:
        expected = conn.execute(
            'SELECT count(*) FROM "icoms"."PAYMENT" WHERE "SITE_ID" <> \'005\''
        ).fetchone()
    with psycopg.connect(databases.warehouse) as conn:
        done = conn.execute(
            "SELECT status, rows_done, rows_total FROM billing_sync.snapshot"
            " WHERE kind = 'backfill'"
        ).fetchall()
        chunks = conn.execute(
            "SELECT sum(rows_read) FROM billing_sync.batch_log WHERE kind = 'backfill'"
        ).fetchone()
    assert expected is not None and chunks is not None
    assert done == [("done", expected[0], expected[0])]
    assert chunks[0] == expected[0]  # the chunk before the kill was not read again
    with SyncEngine.from_settings(settings) as engine:
        assert_parity(engine)
