"""The snapshot's cache feed: chunks gathered, applied in order, never across a gap."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
import pytest

from billing_sync.entities import EntityColumns
from billing_sync.load.cache import CacheApplied, CacheBusy
from billing_sync.load.cache_feed import CacheFeed

PAYMENT = EntityColumns("payment", (("amount", "decimal(12,2)"),))
ACCOUNT = EntityColumns("billing_account", (("name", "text"),))


class FakeCache:
    """Records what would be applied: (entity, batch ids in the rows, batch, previous)."""

    def __init__(self, busy: bool = False) -> None:
        self.calls: list[tuple[str, list[int], int, int]] = []
        self.busy = busy

    def apply(self, columns: EntityColumns, rows: pa.Table, *, batch_id: int,
              previous_batch_id: int, catch_up: Any) -> CacheApplied:  # fmt: skip
        if self.busy:
            raise CacheBusy("held by a reader")
        ids = sorted(set(rows.column("_batch_id").to_pylist()))
        self.calls.append((columns.entity, ids, batch_id, previous_batch_id))
        return CacheApplied(columns.entity, batch_id, rows.num_rows, caught_up=False)


def _rows(batch_id: int, n: int = 10) -> pa.Table:
    return pa.table({"_batch_id": pa.array([batch_id] * n, pa.int64())})


def _feed(cache: FakeCache, min_rows: int = 25) -> CacheFeed:
    return CacheFeed(cache, lambda columns, batch: (pa.table({}), batch), min_rows=min_rows)  # type: ignore[arg-type]


def test_chunks_are_gathered_until_enough_rows_wait() -> None:
    cache = FakeCache()
    feed = _feed(cache)
    for batch in (1, 2, 3, 4):
        feed.add(PAYMENT, _rows(batch), batch_id=batch, previous_batch_id=batch - 1, last=False)
    feed.wait()
    assert cache.calls == [("payment", [1, 2, 3], 3, 0)]
    assert not feed.idle  # batch 4 still gathered
    done = feed.flush()
    assert cache.calls[-1] == ("payment", [4], 4, 3)
    assert [a.last_batch_id for a in done.applied] == [4] and feed.idle


def test_the_last_chunk_applies_everything_gathered() -> None:
    cache = FakeCache()
    feed = _feed(cache, min_rows=1000)
    feed.add(PAYMENT, _rows(7), batch_id=7, previous_batch_id=5, last=False)
    feed.add(PAYMENT, _rows(8), batch_id=8, previous_batch_id=7, last=True)
    feed.wait()
    assert cache.calls == [("payment", [7, 8], 8, 5)]


def test_a_gap_between_chunks_is_never_bridged() -> None:
    """Batch 3 of the entity came from elsewhere (another system's tail): what was gathered
    goes alone, and the next apply starts from batch 3, so the cache catches up."""
    cache = FakeCache()
    feed = _feed(cache, min_rows=1000)
    feed.add(PAYMENT, _rows(2), batch_id=2, previous_batch_id=1, last=False)
    feed.add(PAYMENT, _rows(4), batch_id=4, previous_batch_id=3, last=False)
    feed.flush()
    assert cache.calls == [("payment", [2], 2, 1), ("payment", [4], 4, 3)]


def test_entities_are_gathered_apart() -> None:
    cache = FakeCache()
    feed = _feed(cache, min_rows=1000)
    feed.add(PAYMENT, _rows(1), batch_id=1, previous_batch_id=0, last=False)
    feed.add(ACCOUNT, _rows(2), batch_id=2, previous_batch_id=0, last=False)
    feed.add(PAYMENT, _rows(3), batch_id=3, previous_batch_id=1, last=False)
    feed.close()
    assert sorted(cache.calls) == [("billing_account", [2], 2, 0), ("payment", [1, 3], 3, 0)]


def test_a_busy_cache_is_reported_not_raised() -> None:
    feed = _feed(FakeCache(busy=True))
    feed.add(PAYMENT, _rows(1, 30), batch_id=1, previous_batch_id=0, last=True)
    done = feed.wait()
    assert done.applied == [] and done.busy == "held by a reader"


def test_another_error_is_raised_where_the_engine_waits() -> None:
    class Broken(FakeCache):
        def apply(self, *args: Any, **kwargs: Any) -> CacheApplied:
            raise RuntimeError("disk full")

    feed = _feed(Broken())
    feed.add(PAYMENT, _rows(1, 30), batch_id=1, previous_batch_id=0, last=True)
    with pytest.raises(RuntimeError, match="disk full"):
        feed.wait()


class SlowCache(FakeCache):
    """Applies take their time, as DuckDB's do on a loaded machine; counts how many
    gathered sets were queued (submitted, not applied) at the worst moment."""

    def __init__(self, feed_of: list[CacheFeed]) -> None:
        super().__init__()
        self.feed_of = feed_of
        self.most_queued = 0

    def apply(self, columns: EntityColumns, rows: pa.Table, *, batch_id: int,
              previous_batch_id: int, catch_up: Any) -> CacheApplied:  # fmt: skip
        queued = sum(1 for f in self.feed_of[0]._running if not f.done())
        self.most_queued = max(self.most_queued, queued)
        time.sleep(0.05)
        return super().apply(columns, rows, batch_id=batch_id,
                             previous_batch_id=previous_batch_id, catch_up=catch_up)  # fmt: skip


def test_snapshot_chunks_wait_when_the_cache_falls_behind() -> None:
    """Memory stays bounded: chunks faster than the applies wait for them, with at most
    one gathered set queued behind the apply under way (the 10M-row first load peaked at
    1.5 GB when they piled up), and every chunk is applied in order."""
    holder: list[CacheFeed] = []
    cache = SlowCache(holder)
    feed = _feed(cache, min_rows=10)
    holder.append(feed)
    for batch in range(1, 21):
        feed.add(PAYMENT, _rows(batch), batch_id=batch, previous_batch_id=batch - 1,
                 last=batch == 20)  # fmt: skip
        assert sum(1 for f in feed._running if not f.done()) <= 2
    feed.wait()
    assert cache.most_queued <= 2
    assert [call[2] for call in cache.calls] == list(range(1, 21))
