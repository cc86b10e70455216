"""Refusing to sync from a source that went backwards (DESIGN §4 "Regression").

A source restored from an older copy, or a clock set back, shows a newest change below
the committed watermark, or fewer rows than the warehouse holds. Either fails the run
loudly with what was seen and how to re-base; nothing is silently re-based.

The row count is only the trigger: inserts after a mass delete lift it again, and a
guard on totals alone then passed while thousands of deleted rows stayed unflagged. When
the count drops past ``max_shrink_fraction``, the keys are compared (``find_gone``: the
warehouse rows the source no longer has, by key-range hashing), and a refusal is stored
(``refusals``: :mod:`billing_sync.reconcile.events`, given by the engine, since capture sits
below the layers that store state): the table's sync keeps failing, whatever the
count does next, until a verify finds every such row flagged deleted or back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import psycopg

from billing_sync.capture.query import build_high_watermark_query, decode_high_watermark
from billing_sync.capture.window import Cursor
from billing_sync.config import CaptureSettings, SourceCatalog, TableMapping
from billing_sync.sql import QueryStyle, qualified


class SourceRegressionError(RuntimeError):
    """The source went backwards; the message says what was seen and what to do."""


class _Source(Protocol):
    @property
    def style(self) -> QueryStyle: ...

    def scalar(self, text: str, params: dict[str, Any] | None = None) -> Any: ...


class _Warehouse(Protocol):
    conn: psycopg.Connection[Any]

    def live_rows(self, system: str, mapping: TableMapping) -> int: ...


class Gone(NamedTuple):
    """Warehouse rows (not flagged deleted) whose key the source no longer holds."""

    rows: int
    warehouse_rows: int


FindGone = Callable[[SourceCatalog, TableMapping], Gone | None]
"""The key comparison; ``None`` where it cannot run (the count alone then decides)."""


class _Refusal(Protocol):
    @property
    def detected_at(self) -> datetime: ...
    @property
    def reason(self) -> str: ...
    @property
    def gone(self) -> int: ...
    @property
    def warehouse_rows(self) -> int: ...


class RefusalStore(Protocol):
    """Where refusals persist (:mod:`billing_sync.reconcile.events` satisfies it)."""

    def open_refusals(
        self, conn: psycopg.Connection[Any], *, system: str | None = ..., table: str | None = ...
    ) -> list[Any]: ...

    def record_refusal(
        self, conn: psycopg.Connection[Any], *, system: str, table: str, entity: str,
        gone: int, warehouse_rows: int, reason: str,
    ) -> None: ...  # fmt: skip


class _Watermark(Protocol):
    @property
    def cursor(self) -> Cursor | None: ...


REBASE_HINT = (
    "If the source was really restored: check what it lost, then re-base with "
    "`billing-sync rebase {table}` (a new snapshot from the restored source; "
    "`billing-sync verify --repair` then flags rows it no longer has as deleted)."
)
RESOLVE_HINT = (
    "Check the source first (an outage, a restore from an older copy, a purge). If the rows "
    "were really deleted, `billing-sync verify {table} --repair --max-delete-fraction "
    "{fraction}` flags them deleted and ends this refusal; if they come back, "
    "`billing-sync verify {table}` ends it."
)


def newest_change(source: _Source, catalog: SourceCatalog, mapping: TableMapping) -> Any:
    """The newest change timestamp in the source table (one index entry), or None."""
    query = build_high_watermark_query(mapping, schema=catalog.schema_name, style=source.style)
    value = source.scalar(query)
    return decode_high_watermark(mapping, value)


@dataclass
class RegressionGuard:
    settings: CaptureSettings
    find_gone: FindGone | None = None  # None: the count alone (no key comparison)
    refusals: RefusalStore | None = None  # None: a refusal lasts one check (not stored)
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
        # Every batch, not every interval: a refusal stays loud until it is resolved.
        stored: list[_Refusal] = (
            []
            if self.refusals is None
            else self.refusals.open_refusals(
                warehouse.conn, system=catalog.system, table=mapping.table
            )
        )
        for refusal in stored:
            raise SourceRegressionError(
                f"{name}: sync refused since {refusal.detected_at:%Y-%m-%d %H:%M:%S %Z}: "
                f"{refusal.reason}. Nothing was written. "
                + RESOLVE_HINT.format(
                    table=name, fraction=_fraction(refusal.gone, refusal.warehouse_rows)
                )
            )
        interval = self.settings.shrink_check_interval_seconds
        if time.monotonic() - self._counted_at.get(name, float("-inf")) < interval:
            return
        self._counted_at[name] = time.monotonic()
        in_source = int(
            source.scalar(f"SELECT count(*) FROM {qualified(catalog.schema_name, mapping.table)}")
        )
        in_warehouse = warehouse.live_rows(catalog.system, mapping)
        fraction = self.settings.max_shrink_fraction
        if in_source >= in_warehouse * (1 - fraction):
            return
        # The count is a trigger; what was deleted decides (inserts would hide deletes).
        compared = None if self.find_gone is None else self.find_gone(catalog, mapping)
        gone = compared or Gone(in_warehouse - in_source, in_warehouse)
        if gone.rows <= math.floor(fraction * gone.warehouse_rows):
            return  # deletes within the cap: the parity schedule flags them
        reason = (
            f"the source shrank: {gone.rows} of the warehouse's {gone.warehouse_rows} rows are "
            f"no longer in it (it holds {in_source} rows), more than "
            f"max_shrink_fraction={fraction}"
        )
        if self.refusals is not None:
            self.refusals.record_refusal(
                warehouse.conn, system=catalog.system, table=mapping.table,
                entity=mapping.entity, gone=gone.rows, warehouse_rows=gone.warehouse_rows,
                reason=reason,
            )  # fmt: skip
        raise SourceRegressionError(
            f"{name}: {reason}. Nothing was written. "
            + RESOLVE_HINT.format(table=name, fraction=_fraction(gone.rows, gone.warehouse_rows))
            + " "
            + REBASE_HINT.format(table=name)
        )


def _fraction(gone: int, rows: int) -> str:
    return f"{math.ceil(1000 * gone / max(rows, 1)) / 1000:g}"
