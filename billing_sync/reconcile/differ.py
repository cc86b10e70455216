"""Steps 1 to 4 of verification (see :mod:`.verify`): the key-range hashing of one table
on both sides, bisection down to the differing rows, and their classification."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import polars as pl
import pyarrow as pa

from billing_sync.capture.cursor import decode_packed_many
from billing_sync.column_types import arrow_type
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.entities import STATE_SCHEMA
from billing_sync.reconcile import hashing, portable
from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.reconcile.hashing import EVERYTHING, KeyRange, Side
from billing_sync.reconcile.results import TableVerification
from billing_sync.source.schema import fetch_type, is_composite
from billing_sync.sql import BoundQuery
from billing_sync.transform.normalize import source_key

BISECTION_FACTOR = 16
KEYS_PER_QUERY = 500
MAX_DEPTH = 12
QUARANTINE_TABLE = f"{STATE_SCHEMA}.quarantine"


class _Agg(NamedTuple):
    rows: int
    total: int


class SourceRow(NamedTuple):
    key: tuple[Any, ...]
    hash: int
    pending: bool
    change_ts: datetime


class WarehouseRow(NamedTuple):
    key: tuple[Any, ...]
    hash: int
    source_key: str
    version: datetime


def _norm(key: Iterable[Any]) -> tuple[Any, ...]:
    """A key as both sides agree on it: ``char(n)`` padding dropped."""
    return tuple(value.rstrip(" ") if isinstance(value, str) else value for value in key)


def _target_key(mapping: TableMapping, values: Sequence[Any]) -> tuple[Any, ...]:
    """Source key values as the warehouse holds them: text keys right-trimmed (padded
    CHAR) or written as text (a number mapped to text), integer keys as ints."""
    out: list[Any] = []
    for name, value in zip(mapping.key, values, strict=True):
        kind = mapping.column(name).type
        if value is None:
            out.append(None)
        elif kind == "text":
            out.append(str(value).rstrip(" "))
        elif kind in ("integer", "bigint"):
            out.append(int(value))
        else:
            out.append(value)
    return tuple(out)


def chunks(items: Sequence[Any], size: int = KEYS_PER_QUERY) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _split(key_range: KeyRange, bounds: list[tuple[Any, ...]]) -> list[KeyRange]:
    edges: list[tuple[Any, ...] | None] = [key_range.lo, *bounds, key_range.hi]
    return [KeyRange(lo, hi) for lo, hi in itertools.pairwise(edges)]


class Differ:
    """Runs the hashing queries of one table on both sides, the two sides in parallel."""

    def __init__(
        self,
        engine: EnginePort,
        catalog: SourceCatalog,
        mapping: TableMapping,
        result: TableVerification,
        pool: ThreadPoolExecutor,
        *,
        key_only: bool = False,
    ) -> None:
        self.session = engine.source(catalog.system)
        self.conn = engine.warehouse.conn
        self.mapping = mapping
        self.result = result
        self.pool = pool
        watermark = engine.warehouse.watermark(catalog.system, mapping)
        cursor = watermark.cursor
        pending_after = None if cursor is None else (cursor.change_ts, cursor.key)
        adapter = self.session.adapter
        if adapter is None:  # PostgreSQL on both sides: its own hash (hashing's sides)
            self.source = hashing.source_side(
                mapping, schema=catalog.schema_name, pending_after=pending_after
            )
            self.warehouse = hashing.warehouse_side(
                mapping, system=catalog.system, timezone=catalog.timezone
            )
            if key_only:  # keys alone: an index-only scan can answer the source's side
                self.source = hashing.keys_only(self.source, mapping)
                self.warehouse = hashing.keys_only(self.warehouse, mapping)
        else:  # another engine: the engine-neutral contract on both sides
            # (key_only there still compares whole rows, which finds the deletes too)
            self.source = portable.source_side(
                mapping, schema=catalog.schema_name, pending_after=pending_after, adapter=adapter
            )
            self.warehouse = portable.warehouse_contract_side(
                mapping, system=catalog.system, timezone=catalog.timezone
            )
        # Source keys are fetched with the source's types, then made target values
        # (:func:`_target_key`) so that they compare with the warehouse's.
        keys = [pa.field(f"_k{i}", fetch_type(mapping, name)) for i, name in enumerate(mapping.key)]
        self._key_schema = pa.schema(keys)
        self._aggregate_schema = pa.schema(
            [pa.field("count", pa.int64()), pa.field("total", pa.decimal128(38, 0))]
        )
        self._leaf_schema = pa.schema(
            [
                *keys,
                pa.field("_hash", pa.int64()),
                # 1/0 on engines that select no boolean (see portable.source_side)
                pa.field("_pending", pa.bool_() if adapter is None else pa.int64()),
                pa.field("_change_ts", pa.int64() if is_composite(mapping) else pa.timestamp("us")),
            ]
        )

    # -- running queries ---------------------------------------------------------------------

    def _source_rows(self, query: BoundQuery, schema: pa.Schema) -> list[tuple[Any, ...]]:
        table = self.session.read_arrow(query, schema)
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def _warehouse_rows(self, query: BoundQuery) -> list[tuple[Any, ...]]:
        return self.conn.execute(query.text, query.params).fetchall()

    def _both(
        self,
        on_source: Callable[[], list[Any]],
        on_warehouse: Callable[[], list[Any]],
    ) -> tuple[list[Any], list[Any]]:
        pending = self.pool.submit(on_source)
        warehouse = on_warehouse()
        return pending.result(), warehouse

    def aggregates(self, ranges: list[KeyRange]) -> list[tuple[_Agg, _Agg]]:
        def source() -> list[_Agg]:
            out = []
            for key_range in ranges:
                query = hashing.build_range_aggregate(self.source, key_range)
                ((count, total),) = self._source_rows(query, self._aggregate_schema)
                out.append(_Agg(int(count), int(total)))
            return out

        def warehouse() -> list[_Agg]:
            out = []
            for key_range in ranges:
                query = hashing.build_range_aggregate(self.warehouse, key_range)
                ((count, total),) = self._warehouse_rows(query)
                out.append(_Agg(int(count), int(total)))
            return out

        self.result.segments += len(ranges)
        on_source, on_warehouse = self._both(source, warehouse)
        return list(zip(on_source, on_warehouse, strict=True))

    def boundaries(self, side: Side, key_range: KeyRange, every: int) -> list[tuple[Any, ...]]:
        self.result.boundary_queries += 1
        query = hashing.build_boundaries(side, key_range, every=every)
        if side is self.source:
            rows = self._source_rows(query, self._key_schema)
            return [_target_key(self.mapping, row) for row in rows]
        return [tuple(row) for row in self._warehouse_rows(query)]

    def leaves(
        self, ranges: list[KeyRange]
    ) -> tuple[dict[tuple[Any, ...], SourceRow], dict[tuple[Any, ...], WarehouseRow]]:
        def source() -> list[SourceRow]:
            rows: list[SourceRow] = []
            for key_range in ranges:
                query = hashing.build_leaf_query(self.source, key_range)
                rows.extend(self._source_rows_of(self._source_rows(query, self._leaf_schema)))
            return rows

        def warehouse() -> list[WarehouseRow]:
            rows: list[WarehouseRow] = []
            for key_range in ranges:
                query = hashing.build_leaf_query(self.warehouse, key_range)
                rows.extend(self._warehouse_row(row) for row in self._warehouse_rows(query))
            return rows

        on_source, on_warehouse = self._both(source, warehouse)
        self.result.leaf_ranges += len(ranges)
        self.result.hashes_read += len(on_source) + len(on_warehouse)
        return (
            {_norm(row.key): row for row in on_source},
            {_norm(row.key): row for row in on_warehouse},
        )

    def by_key(
        self, keys: list[tuple[Any, ...]]
    ) -> tuple[dict[tuple[Any, ...], SourceRow], dict[tuple[Any, ...], WarehouseRow]]:
        """Both sides' hashes of ``keys``: the warehouse first, then the source."""
        warehouse: list[WarehouseRow] = []
        for chunk in chunks(keys):
            query = hashing.build_hashes_by_key(self.warehouse, chunk)
            warehouse.extend(self._warehouse_row(row) for row in self._warehouse_rows(query))
        source: list[SourceRow] = []
        for chunk in chunks(keys):
            query = hashing.build_hashes_by_key(self.source, chunk)
            source.extend(self._source_rows_of(self._source_rows(query, self._leaf_schema)))
        self.result.hashes_read += len(source) + len(warehouse)
        return (
            {_norm(row.key): row for row in source},
            {_norm(row.key): row for row in warehouse},
        )

    def _source_rows_of(self, rows: Sequence[tuple[Any, ...]]) -> list[SourceRow]:
        n = len(self.mapping.key)
        versions = [row[n + 2] for row in rows]
        if is_composite(self.mapping):
            versions = decode_packed_many(versions)  # one Polars pass, not one per row
        return [
            SourceRow(_target_key(self.mapping, row[:n]), int(row[n]), bool(row[n + 1]), version)
            for row, version in zip(rows, versions, strict=True)
        ]

    def _warehouse_row(self, row: tuple[Any, ...]) -> WarehouseRow:
        n = len(self.mapping.key)
        return WarehouseRow(tuple(row[:n]), int(row[n]), str(row[n + 1]), row[n + 2])


@dataclass
class Found:
    """The rows behind a verification's differences, for the repair."""

    missing: list[SourceRow] = field(default_factory=list)
    stale: list[SourceRow] = field(default_factory=list)
    extra: list[WarehouseRow] = field(default_factory=list)
    backwards: list[SourceRow] = field(default_factory=list)  # of ``stale``


def diff_table(differ: Differ, *, segment_rows: int, leaf_rows: int) -> Found:
    """Steps 1 to 4 of the module docstring."""
    result = differ.result
    # Top-level boundaries from the warehouse, our own database: the biller only ever
    # sees range queries bounded by them. Where the warehouse lacks rows, a segment is
    # larger on the source side and is cut by source boundaries when it differs.
    bounds = differ.boundaries(differ.warehouse, EVERYTHING, segment_rows)
    queue = _split(EVERYTHING, bounds)
    leaves: list[KeyRange] = []
    depth = 0
    while queue:
        split: list[KeyRange] = []
        for key_range, (source, warehouse) in zip(queue, differ.aggregates(queue), strict=True):
            if depth == 0:
                result.source_rows += source.rows
                result.warehouse_rows += warehouse.rows
            if source == warehouse:
                continue
            rows = max(source.rows, warehouse.rows)
            if rows <= leaf_rows or depth >= MAX_DEPTH:
                leaves.append(key_range)
                continue
            side = differ.source if source.rows >= warehouse.rows else differ.warehouse
            inner = differ.boundaries(side, key_range, math.ceil(rows / BISECTION_FACTOR))
            if not inner:
                leaves.append(key_range)
                continue
            split.extend(_split(key_range, inner))
        queue = split
        depth += 1
    if not leaves:
        return Found()
    source_rows, warehouse_rows = differ.leaves(leaves)
    candidates = [
        (source_rows[key].key if key in source_rows else warehouse_rows[key].key)
        for key in source_rows.keys() | warehouse_rows.keys()
        if key not in source_rows
        or key not in warehouse_rows
        or source_rows[key].hash != warehouse_rows[key].hash
    ]
    if not candidates:
        return Found()
    return _classify(differ, candidates)


def _classify(differ: Differ, candidates: list[tuple[Any, ...]]) -> Found:
    result = differ.result
    source_rows, warehouse_rows = differ.by_key(candidates)
    found = Found()
    for key in {_norm(key) for key in candidates}:
        source = source_rows.get(key)
        warehouse = warehouse_rows.get(key)
        if source is not None and source.pending:
            result.pending += 1
        elif source is None and warehouse is not None:
            found.extra.append(warehouse)
        elif source is not None and warehouse is None:
            found.missing.append(source)
        elif source is not None and warehouse is not None and source.hash != warehouse.hash:
            found.stale.append(source)
            # An unreadable stamp (NULL, 'infinity') has no order: not counted as backwards.
            stamps = (source.change_ts, warehouse.version)
            if None not in stamps and source.change_ts < warehouse.version:
                found.backwards.append(source)
    return found


def source_keys(mapping: TableMapping, keys: Sequence[tuple[Any, ...]]) -> list[str]:
    """``_source_key`` of raw source keys, computed exactly as normalize computes it."""
    if not keys:
        return []
    fields = [pa.field(name, arrow_type(mapping.column(name).type)) for name in mapping.key]
    columns = list(zip(*keys, strict=True))
    table = pa.Table.from_arrays(
        [pa.array(values, type=f.type) for values, f in zip(columns, fields, strict=True)],
        schema=pa.schema(fields),
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return [str(key) for key in frame.select(source_key(list(mapping.key))).to_series()]


def quarantined_keys(
    engine: EnginePort, system: str, mapping: TableMapping, rows: list[SourceRow]
) -> set[str]:
    """Of ``rows``, the source keys held in quarantine at that very version."""
    if not rows or engine.warehouse.conn.execute(
        "SELECT to_regclass(%s)", (QUARANTINE_TABLE,)
    ).fetchone() == (None,):
        return set()
    keys = source_keys(mapping, [row.key for row in rows])
    held = engine.warehouse.conn.execute(
        f"SELECT source_key, source_version FROM {QUARANTINE_TABLE}"
        " WHERE entity = %s AND source_system = %s AND status <> 'released'"
        " AND source_key = ANY(%s)",
        (mapping.entity, system, keys),
    ).fetchall()
    versions: dict[str, datetime] = dict(held)
    return {key for key, row in zip(keys, rows, strict=True) if versions.get(key) == row.change_ts}
