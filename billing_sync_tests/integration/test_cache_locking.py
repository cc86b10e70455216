"""The DuckDB file lock between processes: bounded waits for the writer and for readers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from billing_sync.entities import EntityColumns
from billing_sync.load.cache import Cache, CacheBusy
from billing_sync.load.locking import is_lock_conflict, open_duckdb
from billing_sync.serve.reader import CacheUnavailable, connect_cache, copy_cache, query_cache

pytestmark = pytest.mark.integration

HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read")
print("holding", flush=True)
sys.stdin.readline()
"""

PAYMENT = EntityColumns("payment", (("amount", "decimal(12,2)"),))


class Holder:
    """Another process holding the file (``read``: read-only, ``write``) until released."""

    def __init__(self, path: Path, mode: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "holding"
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:  # from a timer thread and from the test: once
            if self.process.stdin is not None and not self.process.stdin.closed:
                self.process.stdin.write("\n")
                self.process.stdin.close()
        self.process.wait(10)

    def release_later(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.release)
        timer.start()
        return timer


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    cache = Cache(tmp_path / "cache.duckdb", {"payment": PAYMENT})
    cache.setup()
    return cache


def _rows(batch_id: int) -> pa.Table:
    return pa.table(
        {
            "amount": pa.array([1], pa.decimal128(12, 2)),
            "_source_system": ["icoms"],
            "_source_key": ["1"],
            "_source_version": pa.array([0], pa.timestamp("us")),
            "_row_hash": pa.array([1], pa.int64()),
            "_is_deleted": [False],
            "_synced_at": pa.array([0], pa.timestamp("us", "UTC")),
            "_batch_id": pa.array([batch_id], pa.int64()),
        }
    )


def _no_catch_up(columns: EntityColumns, after: int) -> tuple[pa.Table, int]:
    raise AssertionError("the batch in hand follows the cache's last one")


def test_the_writer_waits_for_a_short_reader_then_applies(cache: Cache) -> None:
    rows = _rows(1)
    holder = Holder(cache.path, "read")
    holder.release_later(0.5)
    applied = cache.apply(PAYMENT, rows, batch_id=1, previous_batch_id=0, catch_up=_no_catch_up)
    holder.release()
    assert applied.last_batch_id == 1 and not applied.caught_up
    assert cache.waits.waited == 1 and cache.waits.gave_up == 0


def test_the_writer_gives_up_on_a_long_reader_and_then_tries_only_briefly(
    cache: Cache,
) -> None:
    rows = [_rows(1), _rows(2)]
    holder = Holder(cache.path, "read")
    try:
        began = time.monotonic()
        with pytest.raises(CacheBusy, match="held by another process"):
            cache.apply(PAYMENT, rows[0], batch_id=1, previous_batch_id=0, catch_up=_no_catch_up)
        first = time.monotonic() - began
        began = time.monotonic()
        with pytest.raises(CacheBusy):
            cache.apply(PAYMENT, rows[1], batch_id=2, previous_batch_id=1, catch_up=_no_catch_up)
        second = time.monotonic() - began
    finally:
        holder.release()
    assert cache.lock_wait_seconds <= first < cache.lock_wait_seconds + 2.0
    # The busy streak does not pay the full wait again (0.05 s instead of 1 s).
    assert second < first - cache.lock_wait_seconds / 2
    assert cache.waits.gave_up == 2
    # Free again: the batch after the missing ones catches up from the warehouse.
    caught = cache.apply(
        PAYMENT, _rows(3), batch_id=3, previous_batch_id=2,
        catch_up=lambda columns, after: (_rows(3), 3),
    )  # fmt: skip
    assert caught.caught_up and caught.last_batch_id == 3


def test_readers_share_the_file_and_wait_for_the_writer(cache: Cache) -> None:
    reader = Holder(cache.path, "read")
    try:
        # Another reader gets in beside a reader at once.
        assert query_cache(cache.path, "SELECT count(*) AS n FROM billing.payment")["n"][0] == 0
    finally:
        reader.release()
    writer = Holder(cache.path, "write")
    try:
        with (
            pytest.raises(CacheUnavailable, match="stayed locked"),
            connect_cache(cache.path, timeout=0.3),
        ):
            pass
        writer.release_later(0.5)
        frame = query_cache(cache.path, "SELECT ?::int AS answer", [42], timeout=30)
    finally:
        writer.release()
    assert frame["answer"].to_list() == [42]


def test_only_lock_conflicts_are_retried(tmp_path: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    began = time.monotonic()
    with pytest.raises(duckdb.IOException) as raised:
        open_duckdb(missing, read_only=True, wait_seconds=5)
    assert not is_lock_conflict(raised.value) and time.monotonic() - began < 2
    assert not is_lock_conflict(ValueError("Conflicting lock is held"))


def test_an_analyst_copy_can_stay_open_while_the_writer_applies(
    cache: Cache, tmp_path: Path
) -> None:
    rows = [_rows(1), _rows(2)]
    cache.apply(PAYMENT, rows[0], batch_id=1, previous_batch_id=0, catch_up=_no_catch_up)
    writer = Holder(cache.path, "write")
    writer.release_later(0.5)  # the copy waits for the writer to let go
    try:
        copy = copy_cache(cache.path, tmp_path / "mine.duckdb", timeout=30)
    finally:
        writer.release()
    with duckdb.connect(str(copy), read_only=True) as mine:
        cache.apply(PAYMENT, rows[1], batch_id=2, previous_batch_id=1, catch_up=_no_catch_up)
        assert mine.sql("SELECT _batch_id FROM billing.payment").fetchall() == [(1,)]
    assert cache.waits.gave_up == 0
