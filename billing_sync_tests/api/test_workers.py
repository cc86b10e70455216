"""``billing-sync api --workers 2``: two worker processes behind one port, both answer,
and a cursor issued by one is accepted by the other (the cursor key is shared). Counts
processes and the access log's worker pids; asserts nothing on speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from billing_sync.api.keys import ACCOUNTS_READ, FRESHNESS_READ, entry_line, new_key
from billing_sync_tests.api.conftest import BILLERS, Synced, free_port

pytestmark = pytest.mark.integration

GUARD_SECONDS = 300  # against a hang only: startup on a loaded machine takes long


def _wait_healthy(url: str, api: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5):
                return
        except OSError:
            assert api.poll() is None, f"the API exited ({api.returncode})"
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.5)


def _pids(log: Path) -> list[int]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line["pid"] for line in lines if line.get("route") != "/healthz"]


def test_two_workers_both_answer_and_share_the_cursor_key(synced: Synced, tmp_path: Path) -> None:
    key = new_key("workers")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BILLING_SYNC_STATE_DIR": str(synced.settings.state_dir),
        "BILLING_SYNC_SOURCE_URL": synced.urls.source,
        "BILLING_SYNC_WAREHOUSE_URL": synced.urls.warehouse,
        "BILLING_SYNC_SYSTEMS": ",".join(BILLERS),
        "BILLING_SYNC_API_KEYS": entry_line("workers", key, [ACCOUNTS_READ, FRESHNESS_READ]),
    }
    with psycopg.connect(synced.urls.warehouse) as conn:
        site, number = conn.execute(
            "SELECT site_id, account_number FROM billing.payment WHERE _source_system = 'icoms'"
            " AND NOT _is_deleted GROUP BY 1, 2 HAVING count(*) > 2 LIMIT 1"
        ).fetchone() or (None, None)
    activity = f"/v1/accounts/icoms/{site}:{number}/activity"
    log = tmp_path / "access.log"
    with log.open("wb") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "billing_sync.cli", "api", "--port", str(port),
             "--workers", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_healthy(url, api)
        workers = [
            p
            for p in psutil.Process(api.pid).children()
            if "resource_tracker" not in p.cmdline()[-1]
        ]
        assert len(workers) == 2, [p.cmdline() for p in workers]
        headers = {"Authorization": f"Bearer {key}"}
        crossed: list[tuple[int, int]] = []
        deadline = time.monotonic() + GUARD_SECONDS
        while time.monotonic() < deadline:
            # Fresh connections each time: the kernel gives each to whichever worker
            # accepts it first; concurrent ones reach both.
            pages: list[dict[str, Any]] = []
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                first = http.get(activity, params={"limit": 1})
                assert first.status_code == 200, first.text
                pages.append(first.json())
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                cursor = pages[0]["next_cursor"]
                second = http.get(activity, params={"limit": 1, "cursor": cursor})
                assert second.status_code == 200, second.text  # whichever worker took it
            pids = _pids(log)
            if len(pids) >= 2 and pids[-2] != pids[-1]:
                crossed.append((pids[-2], pids[-1]))
            if crossed and set(_pids(log)) == {p.pid for p in workers}:
                break
        assert set(_pids(log)) == {p.pid for p in workers}
        assert crossed, "no cursor was issued by one worker and read by the other"
    finally:
        api.terminate()
        api.wait(timeout=60)
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
