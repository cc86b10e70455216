"""``billing-sync serve`` under chaos (issue 18), real processes: supervisord runs the code
server, the daemon and the metrics exporter; under a live workload the daemon and then the
code server are SIGKILLed. Each time ``health`` reports it within 60 s, supervisord
restores it, the sync is fresh again (every tier within its SLA, a batch committed after
the kill), and at the end source, warehouse and cache are equal. A clean stop exits 0.
The slower cases (a run worker, the webserver, a warehouse restart) are measured by
scripts/chaos."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from billing_sync.config import load_settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.compare import compare_all
from billing_sync.reconcile.deletes import apply_hard_deletes
from billing_sync.simulator import Workload
from billing_sync_tests.chaos import Served, kill_program, wait_for
from billing_sync_tests.integration.helpers import source_now

pytestmark = [pytest.mark.dagster, pytest.mark.integration, pytest.mark.slow]


def test_serve_restores_a_killed_daemon_and_code_server_and_health_says_so(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    settings = load_settings(path=settings_file)
    with SyncEngine.from_settings(settings) as engine:  # the first load is not under test
        engine.setup()
        engine.drain(until=source_now(databases.source), timeout=120)
    served = Served.start(settings_file)
    workload = Workload(databases.source, rate=20, systems=("icoms",))
    try:
        up = wait_for(lambda: served.supervised.wait_running(timeout=1), timeout=90)
        fresh = wait_for(served.tiers_fresh, timeout=120, every=1.0)
        print(f"serve: all RUNNING in {up:.1f} s, every tier fresh {fresh:.1f} s later")
        workload.start()
        figures = {
            program: kill_program(served, program, databases.warehouse)
            for program in ("daemon", "code_server")
        }
        print(f"chaos: {figures}")
        port = served.layout.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as page:
            text = page.read().decode()
        assert 'billing_sync_up{component="warehouse"} 1.0' in text, text[-2000:]
        assert "billing_sync_batch_duration_seconds_bucket" in text
    finally:
        workload.stop()
        code = served.stop()
    assert code == 0, served.log.read_text()[-3000:]
    with SyncEngine.from_settings(settings) as engine:
        engine.drain(until=source_now(databases.source), timeout=120)
        apply_hard_deletes(engine)  # the workload hard-deletes rows: verify flags them
        results = compare_all(engine)
    assert all(result.equal for result in results), [r for r in results if not r.equal]
