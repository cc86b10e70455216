"""A transaction that stamps its rows at its start and commits 60 s later.

Engine A has the horizon (and no lookback) and the delay it derives from it (a few
milliseconds here): it must hold its windows below the open transaction, report it, and
capture its rows without any late row. Engine B has only
the fixed delay (smaller than 60 s) and a lookback: it passes the transaction's
timestamp, then catches its rows as late rows once they commit. Both end in parity.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest

from billing_sync.engine.batch import TableBatch
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls, drop_database, ensure_database
from billing_sync.simulator import Workload
from billing_sync.simulator.clock import ICOMS_CHANGED_AT_SQL, ICOMS_STAMP_SET, ICOMS_STAMP_VALUES
from billing_sync_tests.integration.helpers import (
    assert_parity,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OPEN_SECONDS = 60


def test_a_long_transaction_is_held_back_by_the_horizon_or_caught_as_late_rows(
    databases: DatabaseUrls, pg_server_url: str, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=60)
    second = f"wh_b_{uuid.uuid4().hex[:8]}"
    urls_b = DatabaseUrls(databases.source, ensure_database(pg_server_url, second))
    with_horizon = settings_for(
        databases, tmp_path / "a",
        capture={"lookback_seconds": 0, "use_transaction_horizon": True},
    )  # fmt: skip
    delay_only = settings_for(
        urls_b, tmp_path / "b",
        capture={"delay_seconds": 1, "lookback_seconds": 90, "lookback_interval_seconds": 0,
                 "use_transaction_horizon": False},
    )  # fmt: skip
    try:
        with SyncEngine.from_settings(with_horizon) as a, SyncEngine.from_settings(delay_only) as b:
            for engine in (a, b):
                engine.setup()
                engine.drain(until=source_now(databases.source))
            batches_a, batches_b, pid, touched = _run_beside_a_long_transaction(a, b, databases)
            a.drain(until=source_now(databases.source), timeout=60)
            b.drain(until=source_now(databases.source), timeout=60)

            held = [x for x in batches_a if x.held_back_by and x.held_back_by.pid == str(pid)]
            assert held, "the horizon never saw the open transaction"
            assert max(x.hold_seconds for x in held) > OPEN_SECONDS - 15
            assert _late_rows(a) == 0
            assert not a.delays.distrusted  # the derived delay held: no late row
            assert a.delays.seconds("icoms", transactions_visible=True, minimum=0.0) < 0.5

            passed = [x for x in batches_b if x.table == "PAYMENT" and x.caught_up_to]
            assert passed and max(x.caught_up_to for x in passed) > _stamped_at(b)
            assert _late_rows(b) >= touched
            assert_parity(a)
            assert_parity(b)
    finally:
        drop_database(pg_server_url, second)


def _run_beside_a_long_transaction(
    a: SyncEngine, b: SyncEngine, databases: DatabaseUrls
) -> tuple[list[TableBatch], list[TableBatch], int, int]:
    batches_a: list[TableBatch] = []
    batches_b: list[TableBatch] = []
    # Hard deletes are verification's to find (tested there), not the tail's.
    workload = Workload(databases.source, rate=60, hard_deletes=False)
    long_running = psycopg.connect(databases.source, application_name="long-billing-run")
    try:
        pid = long_running.info.backend_pid
        long_running.execute(
            f'UPDATE "icoms"."ACCOUNT" SET "CREDIT_CLASS" = \'D\', {ICOMS_STAMP_SET},'
            ' "CHG_USER" = \'LONGRUN\' WHERE "BILL_CYCLE" = 7'
        )
        # New payments nobody else touches: each must arrive exactly as the long run wrote it.
        touched = long_running.execute(
            'INSERT INTO "icoms"."PAYMENT" ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE",'
            ' "AMOUNT", "PAY_METHOD", "PAY_STATUS", "CRT_DATE", "CRT_TIME", "CHG_DATE",'
            ' "CHG_TIME", "CHG_USER", "REC_STATUS")'
            ' SELECT "SITE_ID", 900000000 + row_number() OVER (), "ACCOUNT_NO", 1261125,'
            f" 12.34, 'CK', 'P', {ICOMS_STAMP_VALUES}, 'LONGRUN', 'A'"
            ' FROM "icoms"."ACCOUNT" ORDER BY 1, 3 LIMIT 25'
        ).rowcount
        assert touched == 25
        workload.start()
        deadline = time.monotonic() + OPEN_SECONDS
        while time.monotonic() < deadline:
            batches_a.extend(a.sync_once())
            batches_b.extend(b.sync_once())
            time.sleep(0.5)
        long_running.commit()
        workload.stop()
    finally:
        workload.stop()
        long_running.close()
    return batches_a, batches_b, pid, touched


def _stamped_at(engine: SyncEngine) -> object:
    with psycopg.connect(engine.urls.source) as conn:
        row = conn.execute(
            f'SELECT min({ICOMS_CHANGED_AT_SQL}) FROM "icoms"."PAYMENT"'
            " WHERE \"CHG_USER\" = 'LONGRUN'"
        ).fetchone()
    assert row is not None
    return row[0]


def _late_rows(engine: SyncEngine) -> int:
    with psycopg.connect(engine.urls.warehouse) as conn:
        row = conn.execute("SELECT sum(late_rows) FROM billing_sync.watermark").fetchone()
    assert row is not None
    return int(row[0])
