"""Refusing to sync from a source that went backwards (DESIGN §4 "Regression").

A source restored from an older copy, or a clock set back, shows a newest change below
the committed watermark, or fewer rows than the warehouse holds. Either fails the run
loudly with what was seen and how to re-base; nothing is silently re-based.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from billing_sync.capture.query import build_high_watermark_query, decode_high_watermark
from billing_sync.capture.window import Cursor
from billing_sync.config import CaptureSettings, SourceCatalog, TableMapping
from billing_sync.sql import qualified


class SourceRegressionError(RuntimeError):
    """The source went backwards; the message says what was seen and what to do."""


class _Source(Protocol):
    def scalar(self, text: str, params: dict[str, Any] | None = None) -> Any: ...


class _Warehouse(Protocol):
    def live_rows(self, system: str, mapping: TableMapping) -> int: ...


class _Watermark(Protocol):
    @property
    def cursor(self) -> Cursor | None: ...


REBASE_HINT = (
    "If the source was really restored: check what it lost, then re-base with "
    "`billing-sync rebase {table}` (a new snapshot from the restored source; "
    "`billing-sync verify --repair` then flags rows it no longer has as deleted)."
)


def newest_change(source: _Source, catalog: SourceCatalog, mapping: TableMapping) -> Any:
    """The newest change timestamp in the source table (one index entry), or None."""
    value = source.scalar(build_high_watermark_query(mapping, schema=catalog.schema_name))
    return decode_high_watermark(mapping, value)


@dataclass
class RegressionGuard:
    settings: CaptureSettings
    _counted_at: dict[str, float] = field(default_factory=dict)

    def check(
        self, source: _Source, catalog: SourceCatalog, mapping: TableMapping,
        watermark: _Watermark, *, warehouse: _Warehouse,
    ) -> None:  # fmt: skip
        name = f"{catalog.system}.{mapping.table}"
        cursor = watermark.cursor
        # A hand-over cursor (no key) is a horizon, not a row: the table may hold nothing
        # that new yet, so only a row cursor can prove a regression.
        if cursor is not None and cursor.key:
            newest = newest_change(source, catalog, mapping)
            if newest is None or newest < cursor.change_ts:
                raise SourceRegressionError(
                    f"{name}: the source's newest change is {newest}, below the committed "
                    f"watermark {cursor.change_ts} (key {cursor.key}). The source was restored "
                    "from an older copy or its clock went back. Nothing was written. "
                    + REBASE_HINT.format(table=name)
                )
        self._check_shrink(source, catalog, mapping, warehouse, name)

    def _check_shrink(
        self, source: _Source, catalog: SourceCatalog, mapping: TableMapping,
        warehouse: _Warehouse, name: str,
    ) -> None:  # fmt: skip
        interval = self.settings.shrink_check_interval_seconds
        if time.monotonic() - self._counted_at.get(name, float("-inf")) < interval:
            return
        self._counted_at[name] = time.monotonic()
        in_source = int(
            source.scalar(f"SELECT count(*) FROM {qualified(catalog.schema_name, mapping.table)}")
        )
        in_warehouse = warehouse.live_rows(catalog.system, mapping)
        floor = in_warehouse * (1 - self.settings.max_shrink_fraction)
        if in_source < floor:
            raise SourceRegressionError(
                f"{name}: the source holds {in_source} rows, the warehouse {in_warehouse}: it "
                f"shrank by more than max_shrink_fraction={self.settings.max_shrink_fraction}. "
                "Nothing was written. " + REBASE_HINT.format(table=name)
            )
