"""SIGKILL at every step boundary, and in the middle of 50,000 rows sharing one timestamp:
the next run reaches parity with nothing lost, duplicated or stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from billing_sync.config import Settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.faults import SYNC_POINTS
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import (
    assert_parity,
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _config_file(settings: Settings, path: Path) -> Path:
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json", by_alias=True)))
    return path


def _sync_process(config: Path, *args: str, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ}
    if crash_at:
        env["BILLING_SYNC_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "billing_sync.cli", "--config", str(config), "sync", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("point", [p for p in SYNC_POINTS if p != "after_snapshot_chunk"])
def test_sigkill_at_each_step_boundary_then_parity(
    point: str, databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=40)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(
            f'UPDATE "icoms"."PAYMENT" SET "PAY_STATUS" = \'R\', {ICOMS_STAMP_SET}'
            ' WHERE "PAYMENT_NO" % 5 = 0'
        )
    next_second()  # stamps have whole seconds: --once reads this one only once it is over
    crashed = _sync_process(
        _config_file(settings, tmp_path / "s.yaml"), "--once", "--tier", "priority",
        crash_at=point,
    )  # fmt: skip
    out, _ = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, out
    with SyncEngine.from_settings(settings) as engine:
        engine.drain(until=source_now(databases.source))
        assert_parity(engine)


def test_sigkill_inside_50000_rows_sharing_one_timestamp(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=6_600)  # >= 50,000 payments
    settings = settings_for(
        databases, tmp_path, capture={"delay_seconds": 0, "batch_rows": 1_000,
                                      "lookback_seconds": 0},
    )  # fmt: skip
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source), timeout=300)
    with psycopg.connect(databases.source) as conn:  # one transaction: one timestamp
        shared_ts = conn.execute(  # the transaction's second, as the stamps hold it
            "SELECT date_trunc('second', now() AT TIME ZONE 'America/Chicago')"
        ).fetchone()[0]  # type: ignore[index]
        touched = conn.execute(
            f'UPDATE "icoms"."PAYMENT" SET "PAY_STATUS" = \'R\', {ICOMS_STAMP_SET}'
            ' WHERE ("SITE_ID", "PAYMENT_NO") IN (SELECT "SITE_ID", "PAYMENT_NO"'
            ' FROM "icoms"."PAYMENT" ORDER BY "PAYMENT_NO" DESC, "SITE_ID" LIMIT 50000)'
        ).rowcount
    assert touched == 50_000
    syncing = _sync_process(_config_file(settings, tmp_path / "s.yaml"), "--tier", "priority")
    try:
        _wait_for_batches(databases.warehouse, shared_ts, at_least=12)
        syncing.send_signal(signal.SIGKILL)
    finally:
        syncing.kill()
        syncing.wait()
    assert _rows_committed(databases.warehouse, shared_ts) < touched, "killed too late"
    with SyncEngine.from_settings(settings) as engine:
        engine.drain(until=source_now(databases.source), timeout=300)
        assert_parity(engine)
    # Every committed batch of the shared timestamp read rows nobody read before.
    assert _rows_committed(databases.warehouse, shared_ts) == touched


def _rows_committed(warehouse_url: str, shared_ts: object) -> int:
    with psycopg.connect(warehouse_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(rows_read), 0) FROM billing_sync.batch_log"
            " WHERE source_table = 'PAYMENT' AND kind = 'tail' AND oldest_change = %s",
            (shared_ts,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _wait_for_batches(warehouse_url: str, shared_ts: object, *, at_least: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _rows_committed(warehouse_url, shared_ts) >= at_least * 1_000:
            return
        time.sleep(0.05)
    pytest.fail("the sync never committed the first batches")
