"""``billing-sync serve`` under chaos (issue 18), real processes, one stack for every case
(billing_sync_tests/chaos_cases.py, also run by scripts/chaos): under a live workload the
daemon, the code server and the webserver are SIGKILLed, the priority tier's run worker is
SIGKILLed mid-sync, and the warehouse's PostgreSQL is stopped and started. Each time
``health`` reports it within 60 s, it is back (supervisord, the code server and the
tier's sensor, the server), the sync is fresh again, the webhook alert fires and resolves,
and source, warehouse and cache are equal afterwards. A clean stop exits 0."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.chaos_cases import CASES, chaos_stack, recovery_table, run_cases
from billing_sync_tests.integration.helpers import seeded_source

pytestmark = [pytest.mark.dagster, pytest.mark.integration, pytest.mark.slow]


def test_serve_recovers_from_each_fault_and_health_and_alerts_say_so(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=40)
    with chaos_stack(databases.source, tmp_path) as stack:
        recoveries = run_cases(stack, CASES, report=print)
        port = stack.served.layout.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as page:
            text = page.read().decode()
        assert 'billing_sync_up{component="warehouse"} 1.0' in text, text[-2000:]
        assert "billing_sync_batch_duration_seconds_bucket" in text
    print(recovery_table(recoveries))
    assert [r.case for r in recoveries] == list(CASES)
    for recovery in recoveries:
        assert recovery.reported_s < 60, recovery
