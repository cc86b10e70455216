"""The account API's load generator (``bench api``) against the real server, briefly: every
scheduled request is sent and answered, and the figures it reports are consistent."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from billing_sync.bench.api_client import run
from billing_sync_tests.api.conftest import Synced

pytestmark = pytest.mark.integration


def test_the_load_generator_sends_its_schedule_and_measures_it(served: str, synced: Synced) -> None:
    with psycopg.connect(synced.urls.warehouse) as conn:
        paths = [
            f"/v1/accounts/{system}/{site}:{number}"
            for system, site, number in conn.execute(
                "SELECT source_system, site_id, account_number FROM serve.account_360 LIMIT 10"
            )
        ]
    plan = {"url": served, "keys": [synced.key, synced.accounts_only_key], "paths": paths,
            "rate": 40, "seconds": 1.5}  # fmt: skip
    result = asyncio.run(run(plan))
    # On a saturated machine the generator may drop (-1) what it could not send in time;
    # every request sent is answered 200, and sent plus dropped is the schedule.
    statuses = result["statuses"]
    assert set(statuses) <= {"200", "-1"} and statuses["200"] == result["requests"] > 0
    sent_or_dropped = result["requests"] + statuses.get("-1", 0)
    assert result["scheduled"] - 4 <= sent_or_dropped <= result["scheduled"] + 4
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["client_cpu_ms_per_request"] > 0
