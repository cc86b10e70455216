"""The peers' plain table (``billing_sync.simulator.plain``): its writers stamp
microseconds, and billing-sync's priority tier syncs it to parity, in Dagster's job too."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import plain
from billing_sync_tests.integration.helpers import assert_parity, settings_for, source_now

pytestmark = pytest.mark.integration


def test_writers_stamp_microseconds_and_the_priority_tier_syncs_the_table(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        assert plain.seed(conn, rows=500) == 500
        with pytest.raises(ValueError, match="already holds 500 rows"):
            plain.seed(conn, rows=10)
    workload = plain.PlainWorkload(databases.source, rate=400, writers=2, rows_per_transaction=5)
    with workload as w, psycopg.connect(databases.source, autocommit=True) as conn:
        while w.rows_changed < 40 and not w.errors:
            conn.execute("SELECT pg_sleep(0.05)")
    assert not w.errors and w.rows_changed >= 40
    with psycopg.connect(databases.source, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT updated_at), count(*) FILTER (WHERE"
            " updated_at <> date_trunc('second', updated_at)) FROM peers.account_balance"
        ).fetchone()
    assert row is not None and row[0] >= 3 and row[1] >= 1, row  # sub-second stamps
    settings = settings_for(databases, tmp_path, systems=["peers"])
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source, timezone="UTC"), tier="priority")
        (table,) = assert_parity(engine)
        assert table.table == "account_balance"


def test_dagster_syncs_the_table_in_the_priority_job(monkeypatch: pytest.MonkeyPatch) -> None:
    from billing_sync.defs.build import build_definitions

    monkeypatch.setenv("BILLING_SYNC_SYSTEMS", plain.SYSTEM)
    job = build_definitions().resolve_job_def("sync_priority_job")
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert keys == {"warehouse/account_balance", "cache/account_balance"}
