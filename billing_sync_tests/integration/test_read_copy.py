"""Issue 14 item 5: analysts open the cache with plain DuckDB while the sync runs.

The sync publishes ``cache-read.duckdb`` (:mod:`billing_sync.load.read_copy`); a plain
``duckdb.connect(path, read_only=True)`` in another process, in a loop under a live
workload, never fails, and what it reads is at most a few seconds older than the cache.
The same loop on the cache itself fails while the sync writes (the measured baseline).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.load.read_copy import ReadCopy
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import Workload
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now

pytestmark = pytest.mark.integration

PLAIN_READER = """
import json, os, sys, time
import duckdb

path, seconds, cache = sys.argv[1], float(sys.argv[2]), sys.argv[3]
opens, errors, ages = 0, [], []
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        con = duckdb.connect(path, read_only=True)
        try:
            con.execute("SELECT count(*), sum(amount) FROM billing.payment").fetchall()
            con.execute("SELECT count(*) FROM serve.account_360").fetchall()
        finally:
            con.close()
        opens += 1
        # Behind the cache: since the read copy's state, if the cache changed after it.
        copy_at, cache_at = os.stat(path).st_mtime, os.stat(cache).st_mtime
        ages.append(time.time() - copy_at if cache_at != copy_at else 0.0)
    except Exception as error:  # counted: the test wants none on the read copy
        errors.append(repr(error)[:200])
    time.sleep(0.05)
ages.sort()
print(json.dumps({"opens": opens, "errors": errors, "attempts": opens + len(errors),
                  "age_p50": ages[len(ages) // 2] if ages else None,
                  "age_max": ages[-1] if ages else None}), flush=True)
"""

CLI = Path(sys.executable).parent / "duckdb"  # the duckdb-cli wheel, the 1.5.x line


def _reader(path: Path, seconds: float, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PLAIN_READER, str(path), str(seconds), str(cache)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_plain_read_only_opens_of_the_read_copy_never_fail_while_the_sync_runs(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seconds = float(os.environ.get("BILLING_SYNC_READ_COPY_SECONDS", "60"))
    seeded_source(databases, accounts=150)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0.3})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))  # the first load
    read_copy = settings.read_copy_path
    assert read_copy.exists(), "the engine that wrote the cache published its read copy"
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        with Workload(databases.source, rate=150, seed=5, hard_deletes=False):
            cache = settings.resolved_cache_path
            copy_reader = _reader(read_copy, seconds, cache)
            cache_reader = _reader(cache, seconds, cache)  # the baseline: the cache itself
            deadline = time.monotonic() + seconds + 1
            engine.run(
                tier=None, batches=10**6, poll_interval=0.5,
                should_stop=lambda: time.monotonic() > deadline,
            )  # fmt: skip
            copy_out, _ = copy_reader.communicate(timeout=120)
            cache_out, _ = cache_reader.communicate(timeout=120)
        published = engine.read_copy.last
    on_copy, on_cache = json.loads(copy_out), json.loads(cache_out)
    print(f"read copy: {on_copy}\ncache itself: {on_cache | {'errors': len(on_cache['errors'])}}")
    print(f"last publish: {published}")
    assert on_copy["errors"] == [], on_copy["errors"][:3]
    assert on_copy["opens"] > seconds  # every 50 ms plus the queries; fewer on a loaded machine
    assert published is not None  # the engine's close published the last state
    # The engine's close published the last state: the copy equals the cache.
    query = "SELECT count(*), sum(amount) FROM billing.payment"
    with duckdb.connect(str(read_copy), read_only=True) as con:
        copy_rows = con.execute(query).fetchall()
    with duckdb.connect(str(settings.resolved_cache_path), read_only=True) as con:
        cache_rows = con.execute(query).fetchall()
    assert copy_rows == cache_rows


def test_the_read_copy_is_atomic_cli_readable_and_published_only_when_changed(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache.duckdb"
    with duckdb.connect(str(cache)) as con:
        con.execute(
            "CREATE SCHEMA billing; CREATE SCHEMA serve;"
            " CREATE TABLE billing.payment AS SELECT range AS id, 1.5 AS amount FROM range(1000);"
            " CREATE VIEW serve.paid AS SELECT sum(amount) AS paid FROM billing.payment"
        )
    copy = ReadCopy(cache, interval_seconds=0.01)
    assert copy.stale() and copy.due()
    first = copy.publish()
    assert first is not None and first.path == tmp_path / "cache-read.duckdb"
    assert not copy.stale() and copy.publish() is None  # nothing changed: nothing to do
    assert (first.path.stat().st_mode & 0o777) == 0o600
    held = duckdb.connect(str(first.path), read_only=True)  # an analyst's open connection
    time.sleep(0.01)  # a new mtime
    with duckdb.connect(str(cache)) as con:
        con.execute("INSERT INTO billing.payment SELECT range + 1000, 2.0 FROM range(10)")
    assert copy.stale()
    assert copy.publish() is not None
    assert held.execute("SELECT count(*) FROM billing.payment").fetchall() == [(1000,)]
    held.close()
    with duckdb.connect(str(first.path), read_only=True) as con:
        assert con.execute(
            "SELECT count(*), max(paid) FROM billing.payment, serve.paid"
        ).fetchall() == [(1010, 1520.0)]
    if CLI.exists():  # the 1.5.x command line cannot read the 2.x cache, but reads this
        done = subprocess.run(
            [str(CLI), "-readonly", "-csv", str(first.path), "SELECT paid FROM serve.paid"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "1520" in done.stdout


def test_a_tier_loop_takes_the_read_copy_snapshot_in_the_cache_feed_thread(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    """The loop never waits for an apply nor the snapshot: the snapshot runs in the cache
    feed's thread, between its applies (it held a priority batch ~0.5 s every 2 s)."""
    seeded_source(databases, accounts=60)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0.3})
    threads: list[str] = []
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
        take = engine.read_copy._take_snapshot

        def spied() -> int:
            threads.append(threading.current_thread().name)
            return take()

        engine.read_copy._take_snapshot = spied  # type: ignore[method-assign]
        with Workload(databases.source, rate=100, seed=7, hard_deletes=False):
            deadline = time.monotonic() + 10
            engine.run(
                tier="priority", batches=10**6, poll_interval=0.3,
                should_stop=lambda: time.monotonic() > deadline and len(threads) > 0,
            )  # fmt: skip
        during = list(threads)  # the engine's close publishes the last state itself
    assert during and all(name.startswith("cache-feed") for name in during), during
