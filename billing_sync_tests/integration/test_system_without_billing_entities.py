"""A system that maps no billing entity (the peers' plain table: entity
``account_balance``, which no analysts' view reads) syncs to parity, and the deployment
gets no ``serve`` views: not in the warehouse, not in the cache, not in Dagster's graph."""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.serve.views import VIEWS, served_views
from billing_sync.simulator import plain
from billing_sync_tests.integration.helpers import assert_parity, settings_for, source_now

pytestmark = pytest.mark.integration


def test_a_system_without_billing_entities_syncs_and_gets_no_billing_views(
    databases: DatabaseUrls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        plain.seed(conn, rows=200)
    settings = settings_for(databases, tmp_path, systems=[plain.SYSTEM])
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source, timezone="UTC"), tier="priority")
        (table,) = assert_parity(engine)
        assert table.table == "account_balance"
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM billing.account_balance").fetchone() == (200,)
        views = conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'serve'"
        ).fetchall()
    assert views == []
    with duckdb.connect(str(settings.resolved_cache_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM billing.account_balance").fetchone() == (200,)
        cached = con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'serve'")
        assert cached.fetchall() == []

    from billing_sync.defs.build import build_definitions

    monkeypatch.setenv("BILLING_SYNC_SYSTEMS", plain.SYSTEM)
    keys = {spec.key.to_user_string() for spec in build_definitions().resolve_all_asset_specs()}
    assert not any(key.startswith("serve/") for key in keys), sorted(keys)
    assert {"warehouse/account_balance", "cache/account_balance"} <= keys


def test_views_follow_the_mapped_entities() -> None:
    assert served_views([]) == ()
    assert served_views(["account_balance"]) == ()
    assert served_views(["billing_account"]) == (VIEWS[0],)
    assert [view.name for view in served_views(["payment", "account_balance"])] == [
        "account_360", "daily_revenue", "payment_activity",
    ]  # fmt: skip
