"""Reading a snapshot's next chunk ahead: used only for the very chunk asked for."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from billing_sync.source.prefetch import Prefetch
from billing_sync.sql import BoundQuery


class FakeSession:
    def __init__(self, fail: bool = False) -> None:
        self.reads: list[str] = []
        self.closed = False
        self.fail = fail
        self.queries = 0

    def read_arrow(self, query: BoundQuery, schema: pa.Schema) -> pa.Table:
        if self.fail:
            raise ConnectionError("source gone")
        self.reads.append(query.text)
        self.queries += 1
        return pa.table({"k": [len(self.reads)]})

    def close(self) -> None:
        self.closed = True


def _prefetch(session: FakeSession) -> Prefetch:
    opener: Any = lambda: session  # noqa: E731
    return Prefetch(opener)


SCHEMA = pa.schema([("k", pa.int64())])


def test_the_chunk_read_ahead_is_handed_over_once() -> None:
    session = FakeSession()
    prefetch = _prefetch(session)
    prefetch.start(("T", 1, (5,)), BoundQuery("after 5", {}), SCHEMA)
    assert prefetch.take(("T", 1, (5,))) == pa.table({"k": [1]})
    assert prefetch.take(("T", 1, (5,))) is None  # gone: read again in the foreground
    prefetch.close()
    assert session.closed


def test_another_chunk_does_not_get_it() -> None:
    """The chunk failed, or another process moved the snapshot on: its key differs."""
    prefetch = _prefetch(FakeSession())
    prefetch.start(("T", 1, (5,)), BoundQuery("after 5", {}), SCHEMA)
    assert prefetch.take(("T", 1, (4,))) is None
    prefetch.close()


def test_a_failed_read_ahead_is_forgotten() -> None:
    prefetch = _prefetch(FakeSession(fail=True))
    prefetch.start(("T", 1, None), BoundQuery("first", {}), SCHEMA)
    assert prefetch.take(("T", 1, None)) is None
    prefetch.close()


def test_a_new_read_ahead_replaces_the_old_one() -> None:
    session = FakeSession()
    prefetch = _prefetch(session)
    prefetch.start(("T", 1, (1,)), BoundQuery("after 1", {}), SCHEMA)
    prefetch.start(("T", 1, (2,)), BoundQuery("after 2", {}), SCHEMA)
    assert prefetch.take(("T", 1, (2,))) is not None
    assert session.reads[-1] == "after 2"
    prefetch.close()
