"""Proven parity (DESIGN §7): key-range hashing of source vs warehouse, and the cache.

How a table is verified, step by step (the data-diff method):

1. **Segments.** The key space is cut into segments of about ``segment_rows`` keys
   (every m-th key in key order of the warehouse's rows, an index read on our side; the
   biller only ever sees range queries bounded by these keys). For each segment both sides
   compute ``count(*)`` and the sum of per-row hashes (:mod:`.hashing`): rows are hashed
   inside each database and never leave it.
2. **Bisection.** A segment whose aggregates differ is cut into about
   :data:`BISECTION_FACTOR` sub-ranges (boundaries from the side holding more rows there)
   and compared again, until a differing range holds at most ``leaf_rows`` rows.
3. **Leaves.** Only then are ``(key, hash)`` pairs read, from both sides, and matched by
   key: **missing** (in the source, not in the warehouse), **extra** (in the warehouse,
   no longer in the source: a hard delete), **stale** (hashes differ).
4. **Confirmation.** Every difference is read again by key, warehouse first, then source,
   so a row the tail sync moved meanwhile is not reported (nor deleted). A source row past
   the table's watermark is **pending**: the tail has not claimed it yet, it is not a
   difference. A row held in quarantine is **quarantined**, not missing.

So the cost follows the differences: a table whose segments all agree costs one hashing
pass on each side and no row transfer.

The cache is compared with the warehouse on lineage only, ``(_source_key, _source_version,
_row_hash, _is_deleted)``: rows are bucketed by ``_row_hash``, buckets summarised on both
engines, and only the rows of differing buckets read. Rows of warehouse batches the cache
has not applied yet are left out on both sides. The DuckDB file is opened read-only; when
another process holds it, the report says "cache busy".

With ``repair``: missing and stale rows are read again from the source and go through the
normal load path (normalize, validate and quarantine, warehouse merge, cache apply),
without moving the watermark. The source is the truth: the read happens while the
entity's lock is held (:meth:`~billing_sync.load.warehouse.Warehouse.commit_read`), so it
is later than every batch committed before it and replaces their content even where the
source's stamp is older than the warehouse's (**backwards**: a stamp taken at transaction
start, an application server whose clock lags, DESIGN §11); such rows are counted apart.
Every repair is logged (:mod:`.events`) for the alert sensor. Extra rows are hard deletes:
flagged ``_is_deleted`` in a new batch (so the cache follows) and recorded in
``billing_sync.hard_delete``, so later verifies do not report them again, unless they are
more than ``max_delete_fraction`` of the table's warehouse rows: then nothing is changed
and :class:`DeleteCapExceeded` says so. Differences between cache and warehouse are
repaired from the warehouse.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import duckdb
import polars as pl
import psycopg
import pyarrow as pa

from billing_sync.capture.cursor import decode_packed_many
from billing_sync.capture.query import build_rows_by_key_query
from billing_sync.capture.unreadable import UnreadableCursors
from billing_sync.column_types import arrow_type
from billing_sync.config import ConfigError, SourceCatalog, TableMapping
from billing_sync.entities import ENTITY_SCHEMA, STATE_SCHEMA, entity_columns, rows_to_arrow
from billing_sync.load.cache import CacheBusy
from billing_sync.load.warehouse import CommitResult
from billing_sync.reconcile import events, hashing
from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.reconcile.hashing import EVERYTHING, KeyRange, Side
from billing_sync.reconcile.unreadable_probe import probe_unreadable
from billing_sync.source.schema import fetch_type, is_composite, source_schema
from billing_sync.sql import BoundQuery, qualified
from billing_sync.transform.normalize import source_key
from billing_sync.validate.quarantine import Screened

log = logging.getLogger(__name__)

DEFAULT_MAX_DELETE_FRACTION = 0.05
BISECTION_FACTOR = 16
KEYS_PER_QUERY = 500
MAX_DEPTH = 12
ROWS_PER_CACHE_BUCKET = 250
SAMPLE_SIZE = 5
QUARANTINE_TABLE = f"{STATE_SCHEMA}.quarantine"


class DeleteCapExceeded(RuntimeError):
    """More rows vanished from the source than a run may flag deleted; nothing changed."""

    def __init__(self, message: str, verification: TableVerification) -> None:
        super().__init__(message)
        self.verification = verification


@dataclass
class Differences:
    """Keys (``_source_key`` text) that differ between a side and its reference."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    # Of ``stale``: the source holds an older version than the warehouse (not in ``total``).
    backwards: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.stale)

    def summary(self, sample: int = SAMPLE_SIZE) -> str:
        parts = []
        for name in ("missing", "extra", "stale"):
            keys: list[str] = getattr(self, name)
            text = f"{name} {len(keys)}"
            if keys:
                text += f" (e.g. {', '.join(keys[:sample])})"
            parts.append(text)
        if self.backwards:
            parts.append(f"of them with an older source version {len(self.backwards)}")
        return ", ".join(parts)


@dataclass
class TableVerification:
    """What verifying one table found, read and repaired."""

    system: str
    table: str
    entity: str
    source_rows: int = 0  # rows compared: the source's rows, all segments
    warehouse_rows: int = 0  # the warehouse's rows of this table (recorded hard deletes aside)
    segments: int = 0  # key ranges whose aggregates were compared, all levels
    boundary_queries: int = 0
    leaf_ranges: int = 0
    hashes_read: int = 0  # (key, hash) pairs fetched, both sides, leaves and confirmation
    pending: int = 0  # source rows past the watermark, not yet due in the warehouse
    quarantined: int = 0  # source rows held in quarantine, not missing
    seconds: float = 0.0
    cache_seconds: float = 0.0  # of ``seconds``, comparing (and repairing) the cache
    warehouse: Differences = field(default_factory=Differences)
    cache: Differences | None = None  # None when the cache could not be read
    cache_error: str | None = None
    cache_rows: int = 0
    cache_rows_read: int = 0  # lineage rows fetched from differing buckets, both engines
    repaired_missing: int = 0
    repaired_stale: int = 0
    repaired_backwards: int = 0  # of ``repaired_stale``: back to an older source version
    deleted: int = 0  # hard deletes flagged ``_is_deleted``
    cache_repaired: int = 0
    delete_cap: int = 0  # the most extra rows a repair may flag deleted
    refused: str | None = None  # why the repair refused (delete cap), if it did
    notes: list[str] = field(default_factory=list)
    unreadable: UnreadableCursors | None = None  # rows whose change stamp the tail cannot read

    @property
    def name(self) -> str:
        return f"{self.system}.{self.table}"

    @property
    def remaining(self) -> int:
        """Differences still there after this run (all of them without repair)."""
        warehouse = (
            max(0, len(self.warehouse.missing) - self.repaired_missing)
            + max(0, len(self.warehouse.stale) - self.repaired_stale)
            + max(0, len(self.warehouse.extra) - self.deleted)
        )
        cache = 0 if self.cache is None else max(0, self.cache.total - self.cache_repaired)
        return warehouse + cache

    @property
    def equal(self) -> bool:
        """No difference remains (in the cache too, when it could be read)."""
        return self.remaining == 0


class _Agg(NamedTuple):
    rows: int
    total: int


class _SourceRow(NamedTuple):
    key: tuple[Any, ...]
    hash: int
    pending: bool
    change_ts: datetime


class _WarehouseRow(NamedTuple):
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


def _chunks(items: Sequence[Any], size: int = KEYS_PER_QUERY) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _split(key_range: KeyRange, bounds: list[tuple[Any, ...]]) -> list[KeyRange]:
    edges: list[tuple[Any, ...] | None] = [key_range.lo, *bounds, key_range.hi]
    return [KeyRange(lo, hi) for lo, hi in itertools.pairwise(edges)]


class _Differ:
    """Runs the hashing queries of one table on both sides, the two sides in parallel."""

    def __init__(
        self,
        engine: EnginePort,
        catalog: SourceCatalog,
        mapping: TableMapping,
        result: TableVerification,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.session = engine.source(catalog.system)
        self.conn = engine.warehouse.conn
        self.mapping = mapping
        self.result = result
        self.pool = pool
        watermark = engine.warehouse.watermark(catalog.system, mapping)
        cursor = watermark.cursor
        self.source = hashing.source_side(
            mapping,
            schema=catalog.schema_name,
            pending_after=None if cursor is None else (cursor.change_ts, cursor.key),
        )
        self.warehouse = hashing.warehouse_side(
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
                pa.field("_pending", pa.bool_()),
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
    ) -> tuple[dict[tuple[Any, ...], _SourceRow], dict[tuple[Any, ...], _WarehouseRow]]:
        def source() -> list[_SourceRow]:
            rows: list[_SourceRow] = []
            for key_range in ranges:
                query = hashing.build_leaf_query(self.source, key_range)
                rows.extend(self._source_rows_of(self._source_rows(query, self._leaf_schema)))
            return rows

        def warehouse() -> list[_WarehouseRow]:
            rows: list[_WarehouseRow] = []
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
    ) -> tuple[dict[tuple[Any, ...], _SourceRow], dict[tuple[Any, ...], _WarehouseRow]]:
        """Both sides' hashes of ``keys``: the warehouse first, then the source."""
        warehouse: list[_WarehouseRow] = []
        for chunk in _chunks(keys):
            query = hashing.build_hashes_by_key(self.warehouse, chunk)
            warehouse.extend(self._warehouse_row(row) for row in self._warehouse_rows(query))
        source: list[_SourceRow] = []
        for chunk in _chunks(keys):
            query = hashing.build_hashes_by_key(self.source, chunk)
            source.extend(self._source_rows_of(self._source_rows(query, self._leaf_schema)))
        self.result.hashes_read += len(source) + len(warehouse)
        return (
            {_norm(row.key): row for row in source},
            {_norm(row.key): row for row in warehouse},
        )

    def _source_rows_of(self, rows: Sequence[tuple[Any, ...]]) -> list[_SourceRow]:
        n = len(self.mapping.key)
        versions = [row[n + 2] for row in rows]
        if is_composite(self.mapping):
            versions = decode_packed_many(versions)  # one Polars pass, not one per row
        return [
            _SourceRow(_target_key(self.mapping, row[:n]), int(row[n]), bool(row[n + 1]), version)
            for row, version in zip(rows, versions, strict=True)
        ]

    def _warehouse_row(self, row: tuple[Any, ...]) -> _WarehouseRow:
        n = len(self.mapping.key)
        return _WarehouseRow(tuple(row[:n]), int(row[n]), str(row[n + 1]), row[n + 2])


@dataclass
class _Found:
    """The rows behind a verification's differences, for the repair."""

    missing: list[_SourceRow] = field(default_factory=list)
    stale: list[_SourceRow] = field(default_factory=list)
    extra: list[_WarehouseRow] = field(default_factory=list)
    backwards: list[_SourceRow] = field(default_factory=list)  # of ``stale``


def _diff(differ: _Differ, *, segment_rows: int, leaf_rows: int) -> _Found:
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
        return _Found()
    source_rows, warehouse_rows = differ.leaves(leaves)
    candidates = [
        (source_rows[key].key if key in source_rows else warehouse_rows[key].key)
        for key in source_rows.keys() | warehouse_rows.keys()
        if key not in source_rows
        or key not in warehouse_rows
        or source_rows[key].hash != warehouse_rows[key].hash
    ]
    if not candidates:
        return _Found()
    return _classify(differ, candidates)


def _classify(differ: _Differ, candidates: list[tuple[Any, ...]]) -> _Found:
    result = differ.result
    source_rows, warehouse_rows = differ.by_key(candidates)
    found = _Found()
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


def _source_keys(mapping: TableMapping, keys: Sequence[tuple[Any, ...]]) -> list[str]:
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


def _quarantined(
    engine: EnginePort, system: str, mapping: TableMapping, rows: list[_SourceRow]
) -> set[str]:
    """Of ``rows``, the source keys held in quarantine at that very version."""
    if not rows or engine.warehouse.conn.execute(
        "SELECT to_regclass(%s)", (QUARANTINE_TABLE,)
    ).fetchone() == (None,):
        return set()
    keys = _source_keys(mapping, [row.key for row in rows])
    held = engine.warehouse.conn.execute(
        f"SELECT source_key, source_version FROM {QUARANTINE_TABLE}"
        " WHERE entity = %s AND source_system = %s AND status <> 'released'"
        " AND source_key = ANY(%s)",
        (mapping.entity, system, keys),
    ).fetchall()
    versions: dict[str, datetime] = dict(held)
    return {key for key, row in zip(keys, rows, strict=True) if versions.get(key) == row.change_ts}


def ensure_parity_schema(engine: EnginePort, catalog: SourceCatalog, mapping: TableMapping) -> None:
    """The hard-delete record and the warehouse index on ``(_source_system, key...)`` that
    range queries need (built ``CONCURRENTLY``: the sync keeps writing meanwhile; an
    invalid one left by an interrupted build is built again); and forget recorded hard
    deletes whose row came back. Idempotent."""
    conn = engine.warehouse.conn
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('billing_sync.setup'))")
        conn.execute(hashing.HARD_DELETE_DDL)
    name = hashing.warehouse_key_index_name(mapping)
    valid = conn.execute(
        "SELECT i.indisvalid FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (ENTITY_SCHEMA, name),
    ).fetchone()
    if valid is None or not valid[0]:
        if valid is not None:
            conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(ENTITY_SCHEMA, name)}")
        # UniqueViolation: another verify built it at the same moment.
        with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            conn.execute(hashing.warehouse_key_index(mapping))
    conn.execute(
        hashing.build_hard_delete_cleanup(mapping),
        {"system": catalog.system, "entity": mapping.entity, "table": mapping.table},
    )


def verify_table(
    engine: EnginePort,
    catalog: SourceCatalog,
    mapping: TableMapping,
    *,
    repair: bool,
    max_delete_fraction: float = DEFAULT_MAX_DELETE_FRACTION,
    segment_rows: int = 10_000,
    leaf_rows: int = 1_000,
    check_cache: bool = True,
) -> TableVerification:
    """Verify one table against the source, and the cache against the warehouse.

    Raises :class:`DeleteCapExceeded` (having changed nothing) when ``repair`` would flag
    more than ``max_delete_fraction`` of the table's warehouse rows as deleted.
    """
    if segment_rows < 2 or leaf_rows < 1:
        raise ValueError("segment_rows must be at least 2 and leaf_rows at least 1")
    catalog, mapping = engine.checked(catalog, mapping)  # with the source's column types
    source_engine = engine.source(catalog.system).engine
    if source_engine != "postgresql":
        # The key-range hashes and the unreadable-row probe are PostgreSQL SQL; the
        # engine-neutral row hash contract is not wired yet (docs/sources.md).
        raise ConfigError(
            f"{catalog.system}.{mapping.table}: verify (and the shrink guard's key"
            f" comparison) cannot read a {source_engine} source yet (docs/sources.md,"
            " 'The row hash contract'); only PostgreSQL sources are verified"
        )
    started = time.perf_counter()
    result = TableVerification(catalog.system, mapping.table, mapping.entity)
    ensure_parity_schema(engine, catalog, mapping)
    # Rows the tail can never read: counted, reported and handled by the catalog's rule.
    result.unreadable = probe_unreadable(engine, catalog, mapping)
    if engine.warehouse.watermark(catalog.system, mapping).cursor is None:
        # Nothing is claimed yet: the first load (a snapshot) is still running or to come.
        result.notes.append("not loaded yet (no watermark): nothing to verify")
        result.seconds = time.perf_counter() - started
        return result
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-source") as pool:
        differ = _Differ(engine, catalog, mapping, result, pool)
        found = _diff(differ, segment_rows=segment_rows, leaf_rows=leaf_rows)
    held = _quarantined(engine, catalog.system, mapping, found.missing + found.stale)
    if held:
        result.quarantined = len(held)
        keys = _source_keys(mapping, [row.key for row in found.missing])
        found.missing = [r for r, k in zip(found.missing, keys, strict=True) if k not in held]
        keys = _source_keys(mapping, [row.key for row in found.stale])
        found.stale = [r for r, k in zip(found.stale, keys, strict=True) if k not in held]
        found.backwards = [row for row in found.backwards if row in found.stale]
    result.warehouse = Differences(
        missing=sorted(_source_keys(mapping, [row.key for row in found.missing])),
        extra=sorted(row.source_key for row in found.extra),
        stale=sorted(_source_keys(mapping, [row.key for row in found.stale])),
        backwards=sorted(_source_keys(mapping, [row.key for row in found.backwards])),
    )
    result.delete_cap = math.floor(max_delete_fraction * result.warehouse_rows)
    if len(found.extra) > result.delete_cap:
        result.refused = (
            f"{result.name}: {len(found.extra)} warehouse rows are no longer in the source, "
            f"more than max_delete_fraction={max_delete_fraction} of its "
            f"{result.warehouse_rows} rows (at most {result.delete_cap} per run)"
        )
    if repair:
        if result.refused:
            result.seconds = time.perf_counter() - started
            events.record_refusal(
                engine.warehouse.conn, system=catalog.system, table=mapping.table,
                entity=mapping.entity, gone=len(found.extra),
                warehouse_rows=result.warehouse_rows, reason=result.refused,
            )  # fmt: skip
            raise DeleteCapExceeded(
                f"{result.refused}. Nothing was changed. A source outage, a restore from an "
                "older copy or a purge would look like this: check the source first. If the "
                "rows were really deleted, run `billing-sync verify "
                f"{result.name} --repair --max-delete-fraction "
                f"{_fraction_needed(len(found.extra), result.warehouse_rows)}`.",
                result,
            )
        _repair_from_source(engine, catalog, mapping, found, result)
        _apply_hard_deletes(engine, catalog, mapping, found.extra, result)
        events.record_repair(
            engine.warehouse.conn, system=catalog.system, table=mapping.table,
            entity=mapping.entity, missing=result.repaired_missing,
            stale=result.repaired_stale, backwards=result.repaired_backwards,
            deleted=result.deleted, sample=result.warehouse.summary(), run_id=engine.run_id,
        )  # fmt: skip
    if len(found.extra) <= result.deleted:
        # Nothing the source lacks is left unflagged: deletes confirmed, or rows back.
        events.resolve_refusal(
            engine.warehouse.conn, system=catalog.system, table=mapping.table,
            resolution=f"verify: {result.deleted} rows flagged deleted, none missing unflagged",
        )  # fmt: skip
    if check_cache:
        cache_started = time.perf_counter()
        _verify_cache(engine, catalog, mapping, result, repair=repair)
        result.cache_seconds = time.perf_counter() - cache_started
    result.seconds = time.perf_counter() - started
    return result


def _fraction_needed(extra: int, rows: int) -> str:
    return f"{math.ceil(1000 * extra / max(rows, 1)) / 1000:g}"


# -- repair --------------------------------------------------------------------------------


def _apply_to_cache(
    engine: EnginePort, mapping: TableMapping, rows: pa.Table, commit: CommitResult,
    result: TableVerification,
) -> bool:  # fmt: skip
    """The rows the warehouse wrote, applied to the cache as the sync applies a batch."""
    _, busy = engine.apply_cache(mapping, rows, commit)
    if busy:
        result.notes.append(f"{busy}; the cache takes the repair when it catches up")
    return busy is None


def _repair_from_source(
    engine: EnginePort, catalog: SourceCatalog, mapping: TableMapping, found: _Found,
    result: TableVerification,
) -> None:  # fmt: skip
    keys = [row.key for row in found.missing + found.stale]
    if not keys:
        return
    session = engine.source(catalog.system)
    schema = source_schema(mapping)
    quarantined = 0

    def read() -> tuple[pa.Table, Screened]:
        nonlocal quarantined
        raw = pa.concat_tables(
            [
                session.read_arrow(
                    build_rows_by_key_query(
                        mapping, schema=catalog.schema_name, keys=list(chunk), style=session.style
                    ),
                    schema,
                )
                for chunk in _chunks(keys)
            ]
        )
        rows, screened = engine.prepare(raw, catalog, mapping, polars_validation=True)
        quarantined = screened.quarantined
        return rows, screened

    # Read under the entity's lock: later than every batch committed, so it wins over
    # their content whatever the stamps say (see Warehouse.commit_read).
    commit, rows = engine.warehouse.commit_read(
        system=catalog.system, mapping=mapping, read=read, kind="repair", run_id=engine.run_id
    )
    result.repaired_missing = len(commit.written_keys & set(result.warehouse.missing))
    result.repaired_stale = len(commit.written_keys & set(result.warehouse.stale))
    result.repaired_backwards = len(commit.written_keys & set(result.warehouse.backwards))
    if result.repaired_backwards:
        log.warning(
            "%s: %d rows repaired back to an older source version than the warehouse held "
            "(e.g. %s): source stamps went backwards (transaction-start stamps or a lagging "
            "application clock)",
            result.name, result.repaired_backwards, ", ".join(result.warehouse.backwards[:5]),
        )  # fmt: skip
    if quarantined:
        result.notes.append(f"{quarantined} repaired rows went to quarantine")
    _apply_to_cache(engine, mapping, rows, commit, result)


def _apply_hard_deletes(
    engine: EnginePort, catalog: SourceCatalog, mapping: TableMapping,
    extra: list[_WarehouseRow], result: TableVerification,
) -> None:  # fmt: skip
    if not extra:
        return
    conn = engine.warehouse.conn
    columns = entity_columns(mapping)
    text = hashing.build_warehouse_rows_by_source_key(mapping)
    now = datetime.now(UTC)
    confirmed = {row.source_key: row.version for row in extra}
    version_at = columns.all.index("_source_version")
    for chunk in _chunks(list(confirmed)):
        keys = list(chunk)
        records = [
            record
            for record in conn.execute(text, {"system": catalog.system, "keys": keys})
            # A row the tail rewrote since it was confirmed gone is not a delete (any more).
            if record[version_at] == confirmed[record[columns.all.index("_source_key")]]
        ]
        rows = rows_to_arrow(records, columns)
        rows = rows.set_column(
            rows.schema.get_field_index("_is_deleted"),
            "_is_deleted",
            pa.array([True] * rows.num_rows, pa.bool_()),
        ).set_column(
            rows.schema.get_field_index("_synced_at"),
            "_synced_at",
            pa.array([now] * rows.num_rows, pa.timestamp("us", "UTC")),
        )
        with conn.transaction():
            commit = engine.warehouse.commit_rows(
                system=catalog.system, mapping=mapping, rows=rows.drop_columns(["_batch_id"]),
                kind="hard_delete", replace_equal_versions=True, run_id=engine.run_id,
            )  # fmt: skip
            if commit.batch_id is not None:
                conn.execute(
                    hashing.build_record_hard_deletes(mapping),
                    {
                        "system": catalog.system, "entity": mapping.entity,
                        "table": mapping.table, "batch_id": commit.batch_id, "keys": keys,
                    },
                )  # fmt: skip
        result.deleted += len(commit.written_keys)
        _apply_to_cache(engine, mapping, rows.drop_columns(["_batch_id"]), commit, result)


# -- the cache against the warehouse --------------------------------------------------------


class _Lineage(NamedTuple):
    version: datetime
    row_hash: int
    is_deleted: bool


def _verify_cache(
    engine: EnginePort, catalog: SourceCatalog, mapping: TableMapping,
    result: TableVerification, *, repair: bool,
) -> None:  # fmt: skip
    found = _compare_cache(engine, catalog.system, mapping, result)
    if found is None:
        return
    result.cache = found
    if not repair or not found.total:
        return
    columns = entity_columns(mapping)
    conn = engine.warehouse.conn
    repaired = 0
    wanted = found.missing + found.stale
    for chunk in _chunks(wanted):
        records = conn.execute(
            hashing.build_warehouse_rows_by_source_key(mapping),
            {"system": catalog.system, "keys": list(chunk)},
        ).fetchall()
        rows = rows_to_arrow(records, columns).drop_columns(["_batch_id"])
        commit = engine.warehouse.commit_rows(
            system=catalog.system, mapping=mapping, rows=rows, kind="cache_repair",
            replace_equal_versions=True, run_id=engine.run_id,
        )  # fmt: skip
        if _apply_to_cache(engine, mapping, rows, commit, result):
            repaired += len(commit.written_keys)
    if found.extra:
        try:
            repaired += engine.cache.delete_keys(columns, system=catalog.system, keys=found.extra)
        except CacheBusy as busy:
            result.notes.append(f"{busy}; extra cache rows stay until the next verify")
    result.cache_repaired = repaired


def _compare_cache(
    engine: EnginePort, system: str, mapping: TableMapping, result: TableVerification
) -> Differences | None:
    """Cache vs warehouse on lineage, or ``None`` (and ``cache_error``) when unreadable."""
    try:
        con = engine.cache._connect(read_only=True)
    except CacheBusy:
        result.cache_error = "cache busy: another process holds the DuckDB file"
        return None
    except duckdb.Error as error:
        result.cache_error = f"cache unreadable: {error}"
        return None
    table = entity_columns(mapping).table
    conn = engine.warehouse.conn
    try:
        state = con.execute(
            f"SELECT last_batch_id FROM {STATE_SCHEMA}.cache_state WHERE entity = ?",
            [mapping.entity],
        ).fetchall()
        upto = int(state[0][0]) if state else 0
        buckets = max(1, result.warehouse_rows // ROWS_PER_CACHE_BUCKET)
        params = {"system": system, "upto": upto, "buckets": buckets}
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            pending = [
                key for (key,) in conn.execute(hashing.build_pending_keys_postgres(table), params)
            ]
            if pending:
                result.notes.append(
                    f"{len(pending)} warehouse rows not in the cache yet (it catches up)"
                )
            warehouse = {
                int(row[0]): tuple(int(v) for v in row[1:])
                for row in conn.execute(hashing.build_lineage_buckets_postgres(table), params)
            }
            con.register("pending_keys", pa.table({"_source_key": pa.array(pending, pa.string())}))
            cache = {
                int(row[0]): tuple(int(v) for v in row[1:])
                for row in con.execute(
                    hashing.build_lineage_buckets_duckdb(table, pending="pending_keys"),
                    {"system": system, "buckets": buckets},
                ).fetchall()
            }
            result.cache_rows = sum(summary[0] for summary in cache.values())
            differing = sorted(
                bucket
                for bucket in warehouse.keys() | cache.keys()
                if warehouse.get(bucket) != cache.get(bucket)
            )
            if not differing:
                return Differences()
            in_warehouse = {
                row[0]: _Lineage(*row[1:])
                for row in conn.execute(
                    hashing.build_lineage_rows_postgres(table), {**params, "wanted": differing}
                )
            }
            con.register("wanted_buckets", pa.table({"bucket": pa.array(differing, pa.int64())}))
            in_cache = {
                row[0]: _Lineage(*row[1:])
                for row in con.execute(
                    hashing.build_lineage_rows_duckdb(
                        table, pending="pending_keys", wanted="wanted_buckets"
                    ),
                    {"system": system, "buckets": buckets},
                ).fetchall()
            }
    except duckdb.Error as error:
        result.cache_error = f"cache unreadable: {error}"
        return None
    finally:
        con.close()
    result.cache_rows_read += len(in_warehouse) + len(in_cache)
    return Differences(
        missing=sorted(in_warehouse.keys() - in_cache.keys()),
        extra=sorted(in_cache.keys() - in_warehouse.keys()),
        stale=sorted(
            key
            for key in in_warehouse.keys() & in_cache.keys()
            if in_warehouse[key] != in_cache[key]
        ),
    )


# -- reports ---------------------------------------------------------------------------------


def format_verification(v: TableVerification) -> str:
    """A few lines per table for the CLI."""
    lines = [
        f"{v.name} -> {v.entity}: {v.source_rows} source rows vs {v.warehouse_rows} warehouse "
        f"rows compared in {v.seconds:.2f}s ({v.segments} segments, {v.boundary_queries} "
        f"boundary queries, {v.leaf_ranges} leaf ranges, {v.hashes_read} row hashes read)",
        f"  warehouse: {v.warehouse.summary()}"
        + (f"; pending {v.pending}" if v.pending else "")
        + (f"; quarantined {v.quarantined}" if v.quarantined else ""),
    ]
    if v.cache is None:
        lines.append(f"  cache: not checked ({v.cache_error})")
    else:
        lines.append(f"  cache: {v.cache.summary()} ({v.cache_rows} rows, {v.cache_seconds:.2f}s)")
    if v.repaired_missing or v.repaired_stale or v.deleted or v.cache_repaired:
        lines.append(
            f"  repaired: {v.repaired_missing} missing, {v.repaired_stale} stale"
            + (f" ({v.repaired_backwards} to an older version)" if v.repaired_backwards else "")
            + ", "
            f"{v.deleted} flagged deleted, {v.cache_repaired} in the cache"
        )
    if v.unreadable is not None and v.unreadable.count:
        lines.append(f"  UNREADABLE STAMPS: {v.unreadable.summary()}")
    if v.refused:
        lines.append(f"  REFUSED: {v.refused}")
    lines.extend(f"  note: {note}" for note in v.notes)
    if not v.equal:
        lines.append(f"  DIFFERENT: {v.remaining} differences remain")
    else:
        lines.append("  EQUAL" if v.cache is not None else "  EQUAL (warehouse; cache not checked)")
    return "\n".join(lines)


def select_tables(
    engine: EnginePort, names: Sequence[str]
) -> list[tuple[SourceCatalog, TableMapping]]:
    """Tables named ``SYSTEM.TABLE``, ``TABLE`` or by entity; every table when none."""
    tables = list(engine.tables())
    if not names:
        return tables
    chosen: list[tuple[SourceCatalog, TableMapping]] = []
    for name in names:
        system, _, table = name.rpartition(".")
        found = [
            (catalog, mapping)
            for catalog, mapping in tables
            if system in ("", catalog.system)
            and table.upper() in (mapping.table.upper(), mapping.entity.upper())
        ]
        if not found:
            known = ", ".join(f"{c.system}.{m.table}" for c, m in tables)
            raise LookupError(f"no table {name!r} in the catalogs; known: {known}")
        chosen.extend(pair for pair in found if pair not in chosen)
    return chosen


def run_verify(
    engine: EnginePort,
    names: Sequence[str],
    *,
    repair: bool,
    max_delete_fraction: float = DEFAULT_MAX_DELETE_FRACTION,
    echo: Callable[[str], None] = print,
) -> int:
    """``billing-sync verify``: a report per table; 1 when differences remain (or a repair
    refused), else 0. A refused table does not stop the others."""
    status = 0
    for catalog, mapping in select_tables(engine, names):
        try:
            verification = verify_table(
                engine, catalog, mapping, repair=repair, max_delete_fraction=max_delete_fraction
            )
        except DeleteCapExceeded as refused:
            echo(format_verification(refused.verification))
            echo(f"  {refused}")
            status = 1
            continue
        echo(format_verification(verification))
        if not verification.equal or (verification.unreadable and verification.unreadable.count):
            status = 1
    return status
