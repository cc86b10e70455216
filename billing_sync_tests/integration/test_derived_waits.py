"""Waits derived from the source (issue 20): the delay and the poll between batches.

- With the horizon visible and no delay configured, the delay is what the probe measured
  (milliseconds); late rows switch the source to the fixed delay; an explicit
  ``capture.delay_seconds`` always wins.
- Between micro-batches the loop waits until the source has a row the next batch would
  read: a change committed during the wait ends it long before ``poll_interval``; a
  change an open transaction holds back, or nothing, does not.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from billing_sync.engine import poll
from billing_sync.engine.sync import SyncEngine
from billing_sync.engine.waits import FALLBACK_DELAY_SECONDS
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now

pytestmark = [pytest.mark.integration]

TOUCH_ACCOUNT = (
    f'UPDATE "icoms"."ACCOUNT" SET "CREDIT_CLASS" = \'B\', {ICOMS_STAMP_SET}'
    ' WHERE "ACCOUNT_NO" = (SELECT min("ACCOUNT_NO") FROM "icoms"."ACCOUNT")'
)


def _delay(engine: SyncEngine) -> float:
    horizon = engine.horizon("icoms")
    return (horizon.source_now - horizon.at).total_seconds()


def test_the_delay_is_derived_while_the_horizon_is_trusted(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with SyncEngine.from_settings(settings_for(databases, tmp_path)) as engine:
        assert _delay(engine) < 0.5  # twice the probe's own time
        engine.delays.distrust("icoms", "2 late rows in icoms.PAYMENT")
        assert _delay(engine) == FALLBACK_DELAY_SECONDS
    fixed = settings_for(databases, tmp_path, capture={"delay_seconds": 2})
    with SyncEngine.from_settings(fixed) as engine:
        assert _delay(engine) == 2.0
    blind = settings_for(databases, tmp_path, capture={"use_transaction_horizon": False})
    with SyncEngine.from_settings(blind) as engine:
        assert _delay(engine) == FALLBACK_DELAY_SECONDS


def test_the_wait_between_batches_ends_when_the_source_has_rows(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source), tier="priority")
        tables = list(engine.tables("priority"))
        results = engine.sync_once("priority")
        assert not any(r.rows_read for r in results)

        # Nothing changed: the wait lasts until its end.
        started = time.monotonic()
        poll.wait_for_rows(engine, tables, results, until=started + 1.0, probe_interval=0.05)
        assert time.monotonic() - started >= 1.0

        # A change an open transaction holds back does not end it; once committed and
        # its second is past (second-resolution stamps), it does.
        with psycopg.connect(databases.source) as writer:
            writer.execute(TOUCH_ACCOUNT)
            started = time.monotonic()
            poll.wait_for_rows(engine, tables, results, until=started + 2.5, probe_interval=0.05)
            assert time.monotonic() - started >= 2.5, "a probe saw an uncommitted row"
            committed = threading.Timer(0.3, writer.commit)
            committed.start()
            started = time.monotonic()
            poll.wait_for_rows(engine, tables, results, until=started + 60, probe_interval=0.05)
            waited = time.monotonic() - started
            committed.join()
        assert waited < 30, f"the committed change did not end the wait ({waited:.1f} s)"
        assert any(r.rows_read for r in engine.sync_once("priority"))
