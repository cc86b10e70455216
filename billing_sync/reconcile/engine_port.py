"""What reconciliation needs of the sync engine, as a protocol.

Reconcile repairs through the normal load path, which the engine
(:class:`billing_sync.engine.sync.SyncEngine`) owns; the engine sits above reconcile in
the layers, so reconcile names only the part it uses and the engine satisfies it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pyarrow as pa

from billing_sync.config import Settings, SourceCatalog, TableMapping, Tier
from billing_sync.load.cache import Cache, CacheApplied
from billing_sync.load.warehouse import CommitResult, Warehouse
from billing_sync.source.session import SourceSession
from billing_sync.transform.protect import Protector
from billing_sync.validate.quarantine import Screened


class EnginePort(Protocol):
    settings: Settings
    run_id: str | None
    protector: Protector
    cache: Cache

    @property
    def warehouse(self) -> Warehouse: ...

    def source(self, system: str) -> SourceSession: ...

    def tables(self, tier: Tier | None = None) -> Iterator[tuple[SourceCatalog, TableMapping]]: ...

    def check_sources(self) -> None: ...

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

    def apply_cache(
        self, mapping: TableMapping, rows: pa.Table, result: CommitResult
    ) -> tuple[CacheApplied | None, str | None]: ...
