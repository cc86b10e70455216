"""A value no target can hold ('infinity', a year past 9999, an amount too large) costs
its row, never its table or its tier (issue 12, item 5): the row goes to quarantine with
entity, key, column, value and reason, and everything else flows. A table whose batch
fails whole is reported by name while the other tables of the tier still commit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import AMDOCS_NOW, ICOMS_STAMP_SET
from billing_sync.tier_failures import TablesFailed
from billing_sync_tests.integration.helpers import (
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration


def _quarantined(url: str, entity: str) -> list[tuple[str, str, str | None, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [
            (row[0], row[1], row[2], row[3])
            for row in conn.execute(
                "SELECT source_key, column_name, offending_value, problems::text"
                " FROM billing_sync.quarantine WHERE entity = %s AND status <> 'released'",
                (entity,),
            )
        ]


def test_infinity_birth_date_is_quarantined_and_bills_flow(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=20, systems=("amdocs",))
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0}, systems=["amdocs"])
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source, timezone="UTC"))
        with psycopg.connect(databases.source, autocommit=True) as conn:
            (customer,) = conn.execute(
                'UPDATE amdocs."CUSTOMER" SET "BIRTH_DATE" = \'infinity\','
                f' "SYS_UPDATE_DATE" = {AMDOCS_NOW} WHERE "CUSTOMER_ID" ='
                ' (SELECT min("CUSTOMER_ID") FROM amdocs."CUSTOMER") RETURNING "CUSTOMER_ID"'
            ).fetchone()
            (ban, bill, stamp) = conn.execute(
                f'UPDATE amdocs."BILL" SET "SYS_UPDATE_DATE" = {AMDOCS_NOW} WHERE ("BAN",'
                ' "BILL_SEQ_NO") = (SELECT "BAN", "BILL_SEQ_NO" FROM amdocs."BILL" LIMIT 1)'
                ' RETURNING "BAN", "BILL_SEQ_NO", "SYS_UPDATE_DATE"'
            ).fetchone()
        next_second()
        engine.drain(until=source_now(databases.source, timezone="UTC"))
    rows = _quarantined(databases.warehouse, "customer")
    assert [(key, column, value) for key, column, value, _ in rows] == [
        (str(customer), "birth_date", "infinity")
    ]
    assert "cannot hold" in rows[0][3]
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        loaded = conn.execute(
            "SELECT changed_at FROM billing.customer_bill WHERE _source_system = 'amdocs'"
            " AND account_number = %s AND bill_number = %s",
            (str(ban), bill),
        ).fetchall()
    # the biller's later changes still load (Amdocs stamps are UTC: the same instant)
    assert loaded == [(stamp.replace(tzinfo=UTC),)]


def _clock(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def test_a_failed_table_does_not_hold_back_the_other_biller(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=20, systems=("icoms", "amdocs"))
    settings = settings_for(
        databases, tmp_path, capture={"delay_seconds": 0}, systems=["icoms", "amdocs"]
    )
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=_clock(databases.source))
        icoms = next(c for c in engine.catalogs if c.system == "icoms")
        amdocs = next(c for c in engine.catalogs if c.system == "amdocs")
        before = engine.warehouse.watermark("icoms", icoms.by_table["PAYMENT"])
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = -5, {ICOMS_STAMP_SET}'
                ' WHERE ("SITE_ID", "PAYMENT_NO") IN'
                ' (SELECT "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT" ORDER BY 1, 2 LIMIT 6)'
            )
            (stamp,) = conn.execute(
                f'UPDATE amdocs."PAYMENT" SET "SYS_UPDATE_DATE" = {AMDOCS_NOW}'
                ' WHERE "ENT_SEQ_NO" = (SELECT min("ENT_SEQ_NO") FROM amdocs."PAYMENT")'
                ' RETURNING "SYS_UPDATE_DATE"'
            ).fetchone()
        next_second()
        tier = icoms.by_table["PAYMENT"].tier
        with pytest.raises(TablesFailed) as failed:
            engine.run(tier=tier, batches=2, poll_interval=0)
        assert list(failed.value.failures) == ["icoms.PAYMENT"]
        assert "icoms.PAYMENT" in str(failed.value) and "payment" in str(failed.value)
        held = engine.warehouse.watermark("icoms", icoms.by_table["PAYMENT"])
        # entity_batch_id is the payment entity's, which Amdocs' batches move on.
        assert (held.cursor, held.caught_up_to, held.last_batch_id) == (
            before.cursor,
            before.caught_up_to,
            before.last_batch_id,
        )
        after = engine.warehouse.watermark("amdocs", amdocs.by_table["PAYMENT"])
        assert after.cursor is not None and after.cursor.change_ts >= stamp
