"""Done-when of issue 3 (protection): both billers synced under the workload, then every text
column of every warehouse and cache table is scanned for what must never land in clear."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import Workload
from billing_sync.simulator.people import luhn_valid
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now

pytestmark = pytest.mark.integration

CARD_RUN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
SSN_SHAPED = re.compile(r"(?<!\d)(?:\d{3}-\d{2}-\d{4}|\d{9})(?!\d)")
FORBIDDEN_COLUMNS = re.compile(r"cvv|pin|password|passwd|ssn|card_no", re.IGNORECASE)
ZONES = {"icoms": "America/Chicago", "amdocs": "UTC"}


def _drain_both(engine: SyncEngine, url: str, timeout: float = 240) -> None:
    """Sync until every table of each biller is caught up to now in its own time zone."""
    until = {system: source_now(url, timezone=zone) for system, zone in ZONES.items()}
    deadline = time.monotonic() + timeout
    while True:
        results = engine.sync_once()
        if all(
            r.caught_up_to is not None and r.caught_up_to >= until[r.system] and not r.more_waiting
            for r in results
        ):
            break
        assert time.monotonic() < deadline, [r.table for r in results if r.more_waiting]
        time.sleep(0.2)
    engine.catch_up_cache()


def leaks(values: list[tuple[str, str, Any]], secrets: set[str]) -> list[str]:
    found = []
    for table, column, value in values:
        if not isinstance(value, str):
            continue
        cards = [m for m in CARD_RUN.findall(value) if luhn_valid(m)]
        if cards or SSN_SHAPED.search(value) or value in secrets:
            found.append(f"{table}.{column}={value!r}")
    return found


def test_no_card_number_national_id_or_secret_lands_in_clear(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=60, systems=("icoms", "amdocs"))
    with psycopg.connect(databases.source, autocommit=True) as conn:  # one of each, surely
        conn.execute(
            'UPDATE icoms."ADJUSTMENT" SET "MEMO" = %s'
            ' WHERE ("SITE_ID", "ADJ_NO") = (SELECT "SITE_ID", min("ADJ_NO")'
            ' FROM icoms."ADJUSTMENT" GROUP BY 1 ORDER BY 1 LIMIT 1)',
            ("refund to card 4111-1111-1111-1111, caller SSN 123-45-6789 verified",),
        )
    settings = settings_for(
        databases, tmp_path, capture={"delay_seconds": 0.5}, systems=["icoms", "amdocs"]
    )
    workload = Workload(databases.source, rate=250, systems=("icoms", "amdocs"), seed=5)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        workload.start()
        try:
            started = time.monotonic()
            while time.monotonic() - started < 5:
                engine.run(tier=None, batches=1, poll_interval=0.3)
        finally:
            workload.stop()
        _drain_both(engine, databases.source)
    assert workload.counts()["icoms.PAYMENT"] > 0 and workload.counts()["amdocs.PAYMENT"] > 0

    with psycopg.connect(databases.source) as conn:
        secrets = {
            pw for (pw,) in conn.execute('SELECT "ACC_PASSWORD" FROM amdocs."BILLING_ACCOUNT"')
        }
        cards = conn.execute(
            'SELECT count(*) FROM icoms."PAYMENT" WHERE "CARD_NO" IS NOT NULL'
        ).fetchone()
    assert secrets and cards and cards[0] > 0  # something to leak

    with psycopg.connect(databases.warehouse) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'billing'"
        ).fetchall()
        assert not [c for c in columns if FORBIDDEN_COLUMNS.search(c[1])]
        values: list[tuple[str, str, Any]] = []
        for table, column, kind in columns:
            if kind in ("text", "character varying"):
                values += [
                    (table, column, v)
                    for (v,) in conn.execute(f'SELECT DISTINCT "{column}" FROM billing."{table}"')
                ]
    assert len(values) > 1000
    assert leaks(values, secrets) == []

    con = duckdb.connect(str(settings.resolved_cache_path), read_only=True)
    try:
        cached: list[tuple[str, str, Any]] = []
        for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'billing'"
        ).fetchall():
            assert not FORBIDDEN_COLUMNS.search(column), (table, column)
            if kind == "VARCHAR":
                cached += [
                    (table, column, v)
                    for (v,) in con.execute(
                        f'SELECT DISTINCT "{column}" FROM billing."{table}"'
                    ).fetchall()
                ]
    finally:
        con.close()
    assert len(cached) > 1000
    assert leaks(cached, secrets) == []
