"""A first load into an empty entity goes in without the secondary indexes and builds them
in its last chunk's transaction; another system's batch into the same entity waits on the
lock for those seconds, then commits (issue 15, item 6)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.helpers import seeded_source, settings_for

pytestmark = pytest.mark.integration

INDEXES = ("billing.payment_batch_ix", "billing.payment_account_ix")


def _present(url: str) -> list[bool]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [
            bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0])  # type: ignore[index]
            for name in INDEXES
        ]


def _waiting_on_locks(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        ).fetchall()
    return [row[0] for row in rows]


def _until(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_empty_entity_loads_without_indexes_and_others_wait_for_their_build(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=60, systems=("icoms", "amdocs"))
    settings = settings_for(
        databases, tmp_path / "state", systems=["icoms", "amdocs"],
        capture={"snapshot_rows": 100},
    )  # fmt: skip
    done: dict[str, float] = {}
    with SyncEngine.from_settings(settings) as first, SyncEngine.from_settings(settings) as other:
        first.setup()
        tables = {(c.system, m.table): (c, m) for c, m in first.tables()}
        assert _present(databases.warehouse) == [True, True]
        batch = first.sync_table(*tables[("icoms", "PAYMENT")])
        assert batch.more_waiting
        # The entity was empty: its secondary indexes are gone while the load runs.
        assert _present(databases.warehouse) == [False, False]

        with psycopg.connect(databases.warehouse) as holder:
            # A writer of the entity in an open transaction: the index build queues behind
            # it, so the build's lock is observable.
            holder.execute("LOCK TABLE billing.payment IN ROW EXCLUSIVE MODE")

            def finish() -> None:
                while first.sync_table(*tables[("icoms", "PAYMENT")]).more_waiting:
                    pass
                done["icoms"] = time.monotonic()

            def amdocs() -> None:
                other.sync_table(*tables[("amdocs", "PAYMENT")])
                done["amdocs"] = time.monotonic()

            loader = threading.Thread(target=finish)
            loader.start()
            _until(lambda: any("CREATE INDEX" in q for q in _waiting_on_locks(databases.warehouse)))
            writer = threading.Thread(target=amdocs)
            writer.start()
            # Another system's batch into the entity waits behind the index build.
            _until(lambda: len(_waiting_on_locks(databases.warehouse)) >= 2)
            time.sleep(0.5)
            assert not done, done
            released = holder.execute("SELECT clock_timestamp()").fetchone()
            holder.rollback()
        loader.join(timeout=120)
        writer.join(timeout=120)
    assert set(done) == {"icoms", "amdocs"}
    assert released is not None
    assert _present(databases.warehouse) == [True, True]
    with (
        psycopg.connect(databases.warehouse, autocommit=True) as conn,
        psycopg.connect(databases.source, autocommit=True) as source,
    ):
        loaded = conn.execute(
            "SELECT count(*) FROM billing.payment WHERE _source_system = 'icoms'"
        ).fetchone()
        expected = source.execute('SELECT count(*) FROM icoms."PAYMENT"').fetchone()
        # The other system's batch wrote its rows only once the build's lock was gone.
        after = conn.execute(
            "SELECT min(committed_at) > %s FROM billing_sync.batch_log"
            " WHERE system = 'amdocs' AND source_table = 'PAYMENT'",
            (released[0],),
        ).fetchone()
    assert loaded == expected
    assert after == (True,)
