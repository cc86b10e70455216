"""A cache left behind by a reader: its lag in ``status`` and in the Dagster events, and
its catch-up from the warehouse once the reader lets go, even with no new batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from billing_sync.defs.metadata import materializations
from billing_sync.engine.batch import TableBatch
from billing_sync.engine.status import table_status
from billing_sync.engine.status_report import format_status
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import (
    assert_parity,
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration

HOLD_UNTIL_TOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
sys.stdin.readline()
"""


def test_a_held_cache_shows_its_lag_and_catches_up_without_a_new_batch(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=30)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.validator.warm_up()
        engine.drain(until=source_now(databases.source))
        reader = subprocess.Popen(
            [sys.executable, "-c", HOLD_UNTIL_TOLD, str(settings.resolved_cache_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdin is not None and reader.stdout is not None
        try:
            assert reader.stdout.readline().strip() == "holding"
            with psycopg.connect(databases.source, autocommit=True) as conn:
                conn.execute(
                    'UPDATE "icoms"."ACCOUNT" SET "AR_BALANCE" = "AR_BALANCE" + 1,'
                    f" {ICOMS_STAMP_SET}"
                )
            next_second()
            held = next(b for b in engine.sync_once() if b.table == "ACCOUNT")
            statuses = table_status(engine)  # a reader beside a reader: status can read
        finally:
            reader.stdin.write("\n")
            reader.stdin.close()
            reader.wait(10)

        assert held.inserted + held.updated == 30 and held.cache is None
        assert held.cache_lag is not None and held.cache_lag.batches_behind == 1
        assert held.cache_lag.cache_batch < held.cache_lag.warehouse_batch == held.batch_id
        events = list(materializations(held))
        assert [type(e) for e in events] == [dg.AssetMaterialization, dg.AssetObservation]
        assert events[0].metadata["cache_batches_behind"] == dg.IntMetadataValue(1)
        assert events[1].asset_key == dg.AssetKey(["cache", "billing_account"])
        assert "held by another process" in str(events[1].metadata["cache_busy"])
        account = next(s for s in statuses if s.table == "ACCOUNT")
        assert account.cache_lag is not None and account.cache_lag.behind
        assert "cache behind the warehouse for billing_account" in format_status(statuses)

        # Free again: the next micro-batch has nothing new for ACCOUNT, yet catches it up.
        quiet = next(b for b in engine.sync_once() if b.table == "ACCOUNT")
        assert not quiet.changed and quiet.cache is not None and quiet.cache.caught_up
        assert quiet.cache.rows == 30 and quiet.cache_lag is not None
        assert not quiet.cache_lag.behind
        caught = list(materializations(quiet))
        assert [e.asset_key for e in caught] == [dg.AssetKey(["cache", "billing_account"])]
        assert all(not s.cache_lag or not s.cache_lag.behind for s in table_status(engine))
        assert_parity(engine)


def test_a_tier_loop_applies_the_cache_behind_the_warehouse_and_reports_how_far(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    """In ``run`` the cache is applied in the background (engine.cache_trail): the standard
    tier gathers batches for its interval, so the cache trails by a reported lag; the
    gathered batches (the same rows changed in several of them) apply as one, and when
    the loop ends the cache equals the warehouse."""
    seeded_source(databases, accounts=30)
    settings = settings_for(
        databases, tmp_path,
        tiers={"standard": {"freshness_sla_seconds": 60, "cache_apply_interval_seconds": 30}},
    )  # fmt: skip
    seen: list[list[TableBatch]] = []
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))

        def touch(results: list[TableBatch]) -> None:
            seen.append(results)
            with psycopg.connect(databases.source, autocommit=True) as conn:
                conn.execute(
                    'UPDATE "icoms"."STATEMENT" SET "AMOUNT_DUE" = "AMOUNT_DUE" + 1,'
                    f" {ICOMS_STAMP_SET}"
                )
            next_second()  # second-resolution stamps: the next batch reads this change

        engine.run(tier="standard", batches=3, poll_interval=0.1, on_batch=touch)
        engine.drain(until=source_now(databases.source), tier="standard")
        lags = [b.cache_lag for results in seen for b in results if b.entity == "customer_bill"]
        assert lags[-1] is not None and lags[-1].batches_behind >= 1, lags
        assert lags[-1].seconds > 0
        assert_parity(engine)
