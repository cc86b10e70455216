"""Reading a snapshot's next chunk while the current one loads.

A snapshot chunk is read, then normalized, validated and loaded; its last key names the
next chunk. :class:`Prefetch` reads that next chunk in a background thread, on a
read-only session of its own (a second connection to the source), so the source's side
of the read and the CSV parsing overlap with the load. The next chunk takes the rows
only if it asks for exactly what was read (same snapshot, same key, same filter, same
size): a chunk that failed, or a snapshot another process moved on, reads afresh. A
failed read ahead is forgotten; the chunk then reads in the foreground and fails there,
with the usual message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

from billing_sync.source.session import SourceSession
from billing_sync.sql import BoundQuery

log = logging.getLogger(__name__)


class Prefetch:
    """At most one read ahead, on a session opened on first use and kept until :meth:`close`."""

    def __init__(self, open_session: Callable[[], SourceSession]) -> None:
        self._open_session = open_session
        self._session: SourceSession | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[Hashable, Future[pa.Table]] | None = None

    def start(self, key: Hashable, query: BoundQuery, schema: pa.Schema) -> None:
        """Read ``query`` in the background; :meth:`take` with the same ``key`` gets it."""
        self.discard()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        self._pending = (key, self._executor.submit(self._read, query, schema))

    def _read(self, query: BoundQuery, schema: pa.Schema) -> pa.Table:
        if self._session is None:
            self._session = self._open_session()
        return self._session.read_arrow(query, schema)

    def take(self, key: Hashable) -> pa.Table | None:
        """The rows read ahead for ``key`` (waiting for them), or None."""
        if self._pending is None:
            return None
        wanted, future = self._pending
        self._pending = None
        if wanted != key:
            future.cancel()
            return None
        try:
            return future.result()
        except Exception as error:  # read again in the foreground, where it fails loudly
            log.debug("read ahead failed, reading again: %s", error)
            return None

    def discard(self) -> None:
        if self._pending is not None:
            _, future = self._pending
            self._pending = None
            if not future.cancel():
                future.exception()  # wait: the session must be idle before its next use

    @property
    def queries(self) -> int:
        return 0 if self._session is None else self._session.queries

    def close(self) -> None:
        self.discard()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._session is not None:
            self._session.close()
            self._session = None
