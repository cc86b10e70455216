"""The parts of a :class:`~billing_sync.engine.sync.SyncEngine` that status, snapshot
loads and late rows use, as a protocol: the engine imports those modules, so they
cannot import it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from billing_sync.capture.lookback import Lookback
from billing_sync.config import Settings, SourceCatalog, TableMapping, Tier
from billing_sync.load.cache import Cache
from billing_sync.load.snapshot_io import SnapshotIO
from billing_sync.load.warehouse import Warehouse
from billing_sync.source.horizon import Horizon
from billing_sync.source.session import SourceSession
from billing_sync.validate.quarantine import Screened


class EngineParts(Protocol):
    settings: Settings
    run_id: str | None
    cache: Cache
    lookback: Lookback
    snapshot_io: SnapshotIO
    _complete_below: dict[tuple[Any, ...], datetime]

    @property
    def warehouse(self) -> Warehouse: ...

    def source(self, system: str) -> SourceSession: ...

    def horizon(self, system: str) -> Horizon: ...

    def tables(self, tier: Tier | None = None) -> Iterator[tuple[SourceCatalog, TableMapping]]: ...

    def checked(
        self, catalog: SourceCatalog, mapping: TableMapping
    ) -> tuple[SourceCatalog, TableMapping]: ...

    def prepare(
        self,
        raw: pa.Table,
        catalog: SourceCatalog,
        mapping: TableMapping,
        *,
        polars_validation: bool = False,
        **screening: bool,
    ) -> tuple[pa.Table, Screened]: ...
