"""What an engine keeps between snapshot chunks: reads ahead, and the cache feed.

:class:`SnapshotIO` belongs to one :class:`billing_sync.engine.sync.SyncEngine`. It owns a
read-ahead per source system (:mod:`billing_sync.source.prefetch`) and the background
cache feed (:mod:`billing_sync.load.cache_feed`), with the second warehouse connection
the feed's catch-ups read from (the engine's own is busy with the next chunk's
transaction). :meth:`SnapshotIO.close` applies what is gathered and closes them all.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from billing_sync.entities import EntityColumns
from billing_sync.load.cache import Cache
from billing_sync.load.cache_feed import CacheFeed
from billing_sync.load.warehouse import Warehouse
from billing_sync.source.prefetch import Prefetch
from billing_sync.source.session import SourceSession


class SnapshotIO:
    def __init__(
        self,
        *,
        cache: Cache,
        warehouse_url: Callable[[], str],
        source: Callable[[str], SourceSession],
    ) -> None:
        self._warehouse_url = warehouse_url
        self._source = source
        self._catch_up_warehouse: Warehouse | None = None
        self.feed = CacheFeed(cache, self._rows_since)
        self._prefetches: dict[str, Prefetch] = {}

    def _rows_since(self, columns: EntityColumns, batch_id: int) -> tuple[pa.Table, int]:
        if self._catch_up_warehouse is None:
            self._catch_up_warehouse = Warehouse(self._warehouse_url())
        return self._catch_up_warehouse.rows_since(columns, batch_id)

    def prefetch(self, system: str) -> Prefetch:
        found = self._prefetches.get(system)
        if found is None:
            # The engine's session exists already; its sibling opens in the read-ahead thread.
            found = self._prefetches[system] = Prefetch(self._source(system).sibling)
        return found

    def close(self) -> None:
        try:
            self.feed.close()
        finally:
            for prefetch in self._prefetches.values():
                prefetch.close()
            self._prefetches.clear()
            if self._catch_up_warehouse is not None:
                self._catch_up_warehouse.close()
                self._catch_up_warehouse = None
