"""Rows whose change stamp the tail cannot read are counted, reported and quarantined,
never lost without a word; verify never fails on a value (issue 12, item 6): an ICOMS
CHG_DATE that is not a date (1260230), a CHG_TIME of 246000, a NULL stamp where the
catalog assumes NOT NULL, and 'infinity' in an Amdocs SYS_UPDATE_DATE."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from billing_sync.engine.status import table_status
from billing_sync.engine.status_report import format_status
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.verify import format_verification, verify_table
from billing_sync.simulator.clock import ICOMS_DATE_SQL
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now

pytestmark = pytest.mark.integration

ICOMS_KEY = '"SITE_ID" || \'|\' || "PAYMENT_NO"'
ICOMS_BAD = [
    ('"CHG_DATE" = 1260230, "CHG_TIME" = 120000', "1260230 120000"),  # February 30th
    (f'"CHG_DATE" = {ICOMS_DATE_SQL}, "CHG_TIME" = 246000', "246000"),  # hour 24
    ('"CHG_DATE" = NULL', "NULL"),  # NULL where the catalog assumes NOT NULL
]
AMDOCS_BAD = [
    ("\"SYS_UPDATE_DATE\" = 'infinity'", "infinity"),
    ('"SYS_UPDATE_DATE" = NULL, "SYS_CREATION_DATE" = NULL', "NULL NULL"),
]


def _spoil(
    url: str, system: str, key: str, order: str, changes: list[tuple[str, str]]
) -> list[str]:
    """Write each change into one row of ``system``.PAYMENT; the keys, in key order."""
    keys = []
    with psycopg.connect(url, autocommit=True) as conn:
        column = "CHG_DATE" if system == "icoms" else "SYS_CREATION_DATE"
        conn.execute(f'ALTER TABLE {system}."PAYMENT" ALTER "{column}" DROP NOT NULL')
        rows = conn.execute(
            f'SELECT {key} FROM {system}."PAYMENT" ORDER BY {order} LIMIT %s', (len(changes),)
        ).fetchall()
        for (found,), (change, _) in zip(rows, changes, strict=True):
            conn.execute(f'UPDATE {system}."PAYMENT" SET {change} WHERE {key} = %s', (found,))
            keys.append(str(found))
    return keys


@pytest.mark.parametrize(
    ("system", "key", "order", "changes", "zone"),
    [
        ("icoms", ICOMS_KEY, '"SITE_ID", "PAYMENT_NO"', ICOMS_BAD, "America/Chicago"),
        ("amdocs", '"ENT_SEQ_NO"::text', '"ENT_SEQ_NO"', AMDOCS_BAD, "UTC"),
    ],
)  # fmt: skip
def test_unreadable_stamps_are_counted_quarantined_and_verify_does_not_fail(
    databases: DatabaseUrls,
    tmp_path: Path,
    system: str,
    key: str,
    order: str,
    changes: list[tuple[str, str]],
    zone: str,
) -> None:
    seeded_source(databases, accounts=20, systems=(system,))
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0}, systems=[system])
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source, timezone=zone))
        keys = _spoil(databases.source, system, key, order, changes)
        engine.drain(until=source_now(databases.source, timezone=zone))
        catalog = engine.catalogs[0]
        payment = catalog.by_table["PAYMENT"]
        status = format_status(table_status(engine))
        verification = verify_table(engine, catalog, payment, repair=True)  # never raises
    assert f"{system}.PAYMENT: {len(changes)} rows with an unreadable change stamp" in status
    found = verification.unreadable
    assert found is not None and found.count == len(changes)
    assert found.quarantined == len(changes)
    assert "unreadable change stamp" in format_verification(verification)
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        held = dict(
            conn.execute(
                "SELECT source_key, expectation FROM billing_sync.quarantine"
                " WHERE status = 'open' AND source_system = %s",
                (system,),
            ).fetchall()
        )
    # Each one held, by the probe or (a row verify repairs) by its failed conversion.
    assert set(keys) <= set(held)
    assert all(
        held[k] == "expect_cursor_readable" or held[k].startswith("expect_column_values_to_convert")
        for k in keys
    )
    for stamp, (_, expected) in zip(found.stamps, changes, strict=True):
        assert expected in stamp
