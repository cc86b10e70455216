"""A change in the biller reaches the API through the sync, and the API never claims a
freshness its rows do not have (issue 17). Waits for the sync; asserts nothing on speed."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.api.conftest import Synced

pytestmark = pytest.mark.integration

GUARD_SECONDS = 120  # against a hang only: the loop ends when the sync brought the change


def _freshness(client: TestClient, synced: Synced, table: str) -> dict[str, Any]:
    tables = client.get("/v1/freshness", headers=synced.headers()).json()["tables"]
    found: dict[str, Any] = next(t for t in tables if (t["system"], t["table"]) == ("icoms", table))
    return found


def test_a_change_in_the_source_shows_once_synced_never_before_its_data_as_of(
    client: TestClient, synced: Synced
) -> None:
    with psycopg.connect(synced.urls.warehouse) as conn:
        site, number, balance = conn.execute(
            "SELECT site_id, account_number, current_balance FROM serve.account_360"
            " WHERE source_system = 'icoms' ORDER BY account_number LIMIT 1"
        ).fetchone() or (None, None, None)
    path = f"/v1/accounts/icoms/{site}:{number}"
    assert Decimal(client.get(path, headers=synced.headers()).json()["balance"]) == balance
    wanted = balance + Decimal("123.45")
    with psycopg.connect(synced.urls.source, autocommit=True) as conn:
        conn.execute(
            f'UPDATE icoms."ACCOUNT" SET "AR_BALANCE" = %s, {ICOMS_STAMP_SET}'
            ' WHERE trim("SITE_ID") = %s AND trim("ACCOUNT_NO") = %s',
            (wanted, site, number),
        )
        committed = conn.execute("SELECT clock_timestamp()").fetchone()
    assert committed is not None
    committed_at: datetime = committed[0]

    stop = threading.Event()
    sync = threading.Thread(
        target=synced.engine.run,
        kwargs={"tier": None, "batches": 10**9, "poll_interval": 0.3, "should_stop": stop.is_set},
    )
    sync.start()
    try:
        deadline = time.monotonic() + GUARD_SECONDS
        while True:
            answer = client.get(path, headers=synced.headers())
            body = answer.json()
            if Decimal(body["balance"]) == wanted:
                break
            # Not shown yet: the account's data may not claim to be past the change.
            assert (
                body["data_as_of"] is None
                or datetime.fromisoformat(body["data_as_of"]) < committed_at
            )
            assert time.monotonic() < deadline, "the sync did not bring the change"
            time.sleep(0.1)
        account = _freshness(client, synced, "ACCOUNT")
    finally:
        stop.set()
        sync.join(timeout=60)
    # The table the change came through is caught up past it, and says so with its tier's
    # SLA; whether the lag is within it is the sync's speed (measured in bench, not here).
    assert account["tier"] == "priority" and account["sla_seconds"] == 10
    assert datetime.fromisoformat(account["caught_up_to"]) >= committed_at
    assert account["lag_seconds"] is not None
    assert answer.headers["Data-As-Of"] != "none"
