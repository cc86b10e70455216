"""The hot-row probe runs only while the horizon trails the source clock (issue 20).

The probe reads every key above the horizon; on the peers' microsecond table, with no
delay and no open transaction, nothing can be starved by a horizon a few ms behind, so
the probe is skipped. An open transaction holding the horizon back makes the lag real:
the probe runs again (billing_sync.engine.read_ahead).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from billing_sync.engine import read_ahead as read_ahead_module
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import plain
from billing_sync_tests.integration.helpers import settings_for, source_now

pytestmark = pytest.mark.integration

TOUCH = "UPDATE peers.account_balance SET balance = balance + 1, updated_at = {} WHERE id = %s"


def test_the_probe_is_skipped_while_the_horizon_is_close_and_runs_while_it_is_held_back(
    databases: DatabaseUrls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        plain.seed(conn, rows=200)
    settings = settings_for(databases, tmp_path, systems=["peers"], capture={"delay_seconds": 0})
    probes: list[int] = []
    probe = read_ahead_module._probe

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = probe(*args, **kwargs)
        probes.append(len(found))
        return found

    monkeypatch.setattr(read_ahead_module, "_probe", counted)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source, timezone="UTC"), tier="priority")
        probes.clear()
        with psycopg.connect(databases.source, autocommit=True) as conn:
            for key in (1, 2, 3):
                conn.execute(TOUCH.format(plain.NOW_UTC), (key,))
        for _ in range(3):
            engine.sync_once(tier="priority")
        assert probes == [], "a horizon a few ms behind needs no probe"

        holder = psycopg.connect(databases.source)
        try:
            holder.execute(TOUCH.format(plain.NOW_UTC), (10,))  # open: holds the horizon
            time.sleep(0.5)
            with psycopg.connect(databases.source, autocommit=True) as conn:
                conn.execute(TOUCH.format(plain.NOW_UTC), (11,))
            engine.sync_once(tier="priority")
            assert probes, "an open transaction 0.5 s old holds the horizon back: probe"
            assert probes[-1] >= 1  # key 11, committed above the held horizon
        finally:
            holder.rollback()
            holder.close()
