"""The DuckDB file lock between processes: bounded waits for the writer and for readers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from billing_sync.load.cache import Cache, CacheBusy
from billing_sync.load.ddl import EntityColumns
from billing_sync.serve.locking import is_lock_conflict, open_duckdb
from billing_sync.serve.reader import CacheUnavailable, connect_cache, copy_cache, query_cache

pytestmark = pytest.mark.integration

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read")
print("holding", flush=True)
time.sleep(float(sys.argv[3]))
"""

PAYMENT = EntityColumns("payment", (("amount", "decimal(12,2)"),))


def _hold(path: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


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
    cache.lock_wait_seconds = 10.0  # the machine may be slow: this is about waiting at all
    holder = _hold(cache.path, "read", 2.0)
    applied = cache.apply(PAYMENT, _rows(1), batch_id=1, previous_batch_id=0, catch_up=_no_catch_up)
    holder.wait(10)
    assert applied.last_batch_id == 1 and not applied.caught_up
    assert cache.waits.waited == 1 and cache.waits.gave_up == 0


def test_the_writer_gives_up_on_a_long_reader_and_then_tries_only_briefly(
    cache: Cache,
) -> None:
    holder = _hold(cache.path, "read", 6)
    try:
        began = time.monotonic()
        with pytest.raises(CacheBusy, match="held by another process"):
            cache.apply(PAYMENT, _rows(1), batch_id=1, previous_batch_id=0, catch_up=_no_catch_up)
        first = time.monotonic() - began
        began = time.monotonic()
        with pytest.raises(CacheBusy):
            cache.apply(PAYMENT, _rows(2), batch_id=2, previous_batch_id=1, catch_up=_no_catch_up)
        second = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait()
    assert cache.lock_wait_seconds <= first < cache.lock_wait_seconds + 1.0
    assert second < first / 2  # the busy streak does not pay the full wait again
    assert cache.waits.gave_up == 2
    # Free again: the batch after the missing ones catches up from the warehouse.
    caught = cache.apply(
        PAYMENT, _rows(3), batch_id=3, previous_batch_id=2,
        catch_up=lambda columns, after: (_rows(3), 3),
    )  # fmt: skip
    assert caught.caught_up and caught.last_batch_id == 3


def test_readers_share_the_file_and_wait_for_the_writer(cache: Cache) -> None:
    reader = _hold(cache.path, "read", 1.5)
    try:
        # Another reader gets in beside a reader at once.
        assert query_cache(cache.path, "SELECT count(*) AS n FROM billing.payment")["n"][0] == 0
    finally:
        reader.wait(10)
    writer = _hold(cache.path, "write", 0.5)
    frame = query_cache(cache.path, "SELECT ?::int AS answer", [42], timeout=10)
    writer.wait(10)
    assert frame["answer"].to_list() == [42]
    writer = _hold(cache.path, "write", 3)
    try:
        with (
            pytest.raises(CacheUnavailable, match="stayed locked"),
            connect_cache(cache.path, timeout=0.3),
        ):
            pass
    finally:
        writer.kill()
        writer.wait()


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
    cache.apply(PAYMENT, _rows(1), batch_id=1, previous_batch_id=0, catch_up=_no_catch_up)
    writer = _hold(cache.path, "write", 0.5)  # the copy waits for the writer to let go
    copy = copy_cache(cache.path, tmp_path / "mine.duckdb", timeout=10)
    writer.wait(10)
    with duckdb.connect(str(copy), read_only=True) as mine:
        cache.apply(PAYMENT, _rows(2), batch_id=2, previous_batch_id=1, catch_up=_no_catch_up)
        assert mine.sql("SELECT _batch_id FROM billing.payment").fetchall() == [(1,)]
    assert cache.waits.gave_up == 0
