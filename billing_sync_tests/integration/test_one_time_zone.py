"""One time zone in the model (issue 14, item 6): every business timestamp of
``billing.*`` is an instant (``timestamptz``) whatever the biller's zone, in the
warehouse and the cache; a warehouse from before is refused at set-up and upgraded by
``billing-sync upgrade-timestamps``, each row with its own system's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from billing_sync.cli import main
from billing_sync.engine.sync import SyncEngine
from billing_sync.load.zone_upgrade import LocalTimestamps
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.helpers import seeded_source, settings_for

pytestmark = pytest.mark.integration

BILLERS = ("icoms", "amdocs")
# Both billers' payments changed by one source transaction: ICOMS stamps its start in
# America/Chicago wall time (CYYMMDD, HHMMSS), Amdocs in UTC, both to the second.
STAMP_BOTH = """
UPDATE icoms."PAYMENT" SET
    "CHG_DATE" = (extract(year FROM now() AT TIME ZONE 'America/Chicago')::int - 1900) * 10000
        + extract(month FROM now() AT TIME ZONE 'America/Chicago')::int * 100
        + extract(day FROM now() AT TIME ZONE 'America/Chicago')::int,
    "CHG_TIME" = to_char(now() AT TIME ZONE 'America/Chicago', 'HH24MISS')::int
WHERE ("SITE_ID", "PAYMENT_NO") = (SELECT "SITE_ID", "PAYMENT_NO" FROM icoms."PAYMENT"
                                   ORDER BY 1, 2 LIMIT 1)
RETURNING "SITE_ID", "PAYMENT_NO";
UPDATE amdocs."PAYMENT" SET "SYS_UPDATE_DATE" = date_trunc('second', now() AT TIME ZONE 'UTC')
WHERE "ENT_SEQ_NO" = (SELECT min("ENT_SEQ_NO") FROM amdocs."PAYMENT");
"""


def _stamp_both(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        conn.execute(STAMP_BOTH)
        row = conn.execute("SELECT date_trunc('second', now())").fetchone()
    assert row is not None
    instant: datetime = row[0]
    return instant


def test_payments_of_both_billers_committed_together_have_one_changed_at(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=5, systems=BILLERS)
    settings = settings_for(databases, tmp_path, systems=list(BILLERS))
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        instant = _stamp_both(databases.source)
        engine.drain(until=datetime.now(UTC) + timedelta(seconds=2))
        query = (
            "SELECT _source_system, changed_at FROM billing.payment"
            " WHERE changed_at = (SELECT max(changed_at) FROM billing.payment) ORDER BY 1"
        )
        stored = engine.warehouse.conn.execute(query).fetchall()
    assert stored == [("amdocs", instant), ("icoms", instant)]
    with duckdb.connect(str(settings.resolved_cache_path), read_only=True) as con:
        con.execute("SET TimeZone = 'Asia/Tokyo'")  # an instant reads the same anywhere
        cached = con.execute(
            "SELECT _source_system, changed_at FROM billing.payment"
            " WHERE changed_at = TIMESTAMPTZ '" + instant.isoformat() + "' ORDER BY 1"
        ).fetchall()
        kinds = con.execute(
            "SELECT DISTINCT data_type FROM duckdb_columns() WHERE schema_name = 'billing'"
            " AND column_name IN ('changed_at', 'created_at', 'started_at')"
        ).fetchall()
    assert [system for system, _ in cached] == ["amdocs", "icoms"]
    assert kinds == [("TIMESTAMP WITH TIME ZONE",)]


def test_an_earlier_warehouse_is_refused_then_upgraded_row_by_row(
    databases: DatabaseUrls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded_source(databases, accounts=5, systems=BILLERS)
    settings = settings_for(databases, tmp_path, systems=list(BILLERS))
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=datetime.now(UTC) + timedelta(seconds=2))
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        before = dict(conn.execute(
            "SELECT _source_system || '|' || _source_key, changed_at FROM billing.payment"
        ).fetchall())  # fmt: skip
        # As an earlier billing-sync left it: each biller's wall time in `timestamp`.
        conn.execute(
            "ALTER TABLE billing.payment ALTER COLUMN changed_at TYPE timestamp USING"
            " CASE _source_system WHEN 'icoms' THEN changed_at AT TIME ZONE 'America/Chicago'"
            " ELSE changed_at AT TIME ZONE 'UTC' END"
        )
    with SyncEngine.from_settings(settings) as engine, pytest.raises(LocalTimestamps) as refused:
        engine.setup()
    assert "billing.payment.changed_at" in str(refused.value)
    assert "billing-sync upgrade-timestamps" in str(refused.value)

    for name, value in {
        "BILLING_SYNC_STATE_DIR": str(tmp_path),
        "BILLING_SYNC_SOURCE_URL": databases.source,
        "BILLING_SYNC_WAREHOUSE_URL": databases.warehouse,
        "BILLING_SYNC_CACHE_PATH": str(settings.resolved_cache_path),
        "BILLING_SYNC_SYSTEMS": ",".join(BILLERS),
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["upgrade-timestamps"]) == 0
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        after = dict(conn.execute(
            "SELECT _source_system || '|' || _source_key, changed_at FROM billing.payment"
        ).fetchall())  # fmt: skip
    assert after == before
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()  # accepted now
