"""Proven parity (DESIGN §7): key-range hashing of source vs warehouse, and the cache.

How a table is verified, step by step (the data-diff method):

1. **Segments.** The key space is cut into segments of about ``segment_rows`` keys
   (every m-th key in key order of the warehouse's rows, an index read on our side; the
   biller only ever sees range queries bounded by these keys). For each segment both sides
   compute ``count(*)`` and the sum of per-row hashes (:mod:`.hashing`; a source on
   another engine than PostgreSQL by the engine-neutral contract, :mod:`.portable`): rows
   are hashed inside each database and never leave it.
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

Modules: :mod:`.differ` (steps 1 to 4), :mod:`.repair`, :mod:`.cache_check`,
:mod:`.results` (what a run found, and its report); this one runs them per table.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import psycopg

from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.entities import ENTITY_SCHEMA
from billing_sync.reconcile import events, hashing
from billing_sync.reconcile.cache_check import verify_cache
from billing_sync.reconcile.differ import Differ, diff_table, quarantined_keys, source_keys
from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.reconcile.repair import flag_hard_deletes, repair_from_source
from billing_sync.reconcile.results import (
    DeleteCapExceeded,
    Differences,
    TableVerification,
    format_verification,
)
from billing_sync.reconcile.unreadable_probe import probe_unreadable
from billing_sync.sql import qualified

log = logging.getLogger(__name__)

DEFAULT_MAX_DELETE_FRACTION = 0.05

__all__ = [
    "DEFAULT_MAX_DELETE_FRACTION",
    "DeleteCapExceeded",
    "Differences",
    "TableVerification",
    "ensure_parity_schema",
    "format_verification",
    "run_verify",
    "select_tables",
    "verify_table",
]


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
    key_only: bool = False,
) -> TableVerification:
    """Verify one table against the source, and the cache against the warehouse.

    Raises :class:`DeleteCapExceeded` (having changed nothing) when ``repair`` would flag
    more than ``max_delete_fraction`` of the table's warehouse rows as deleted.

    ``key_only`` compares keys, not rows (:func:`.hashing.keys_only`: index-only scans on a
    PostgreSQL source): it finds hard deletes and missing rows, never stale ones, and its
    repair only flags the deletes (:mod:`.deletes`, every minute for the priority tier).
    """
    if segment_rows < 2 or leaf_rows < 1:
        raise ValueError("segment_rows must be at least 2 and leaf_rows at least 1")
    catalog, mapping = engine.checked(catalog, mapping)  # with the source's column types
    started = time.perf_counter()
    result = TableVerification(catalog.system, mapping.table, mapping.entity)
    ensure_parity_schema(engine, catalog, mapping)
    # Rows the tail can never read: counted, reported and handled by the catalog's rule.
    if not key_only:  # the minute's key compare leaves this probe to the full verify
        result.unreadable = probe_unreadable(engine, catalog, mapping)
    if engine.warehouse.watermark(catalog.system, mapping).cursor is None:
        # Nothing is claimed yet: the first load (a snapshot) is still running or to come.
        result.notes.append("not loaded yet (no watermark): nothing to verify")
        result.seconds = time.perf_counter() - started
        return result
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-source") as pool:
        differ = Differ(engine, catalog, mapping, result, pool, key_only=key_only)
        found = diff_table(differ, segment_rows=segment_rows, leaf_rows=leaf_rows)
    held = quarantined_keys(engine, catalog.system, mapping, found.missing + found.stale)
    if held:
        result.quarantined = len(held)
        keys = source_keys(mapping, [row.key for row in found.missing])
        found.missing = [r for r, k in zip(found.missing, keys, strict=True) if k not in held]
        keys = source_keys(mapping, [row.key for row in found.stale])
        found.stale = [r for r, k in zip(found.stale, keys, strict=True) if k not in held]
        found.backwards = [row for row in found.backwards if row in found.stale]
    result.warehouse = Differences(
        missing=sorted(source_keys(mapping, [row.key for row in found.missing])),
        extra=sorted(row.source_key for row in found.extra),
        stale=sorted(source_keys(mapping, [row.key for row in found.stale])),
        backwards=sorted(source_keys(mapping, [row.key for row in found.backwards])),
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
        if not key_only:  # missing rows found by keys alone wait for the full verify
            repair_from_source(engine, catalog, mapping, found, result)
        flag_hard_deletes(engine, catalog, mapping, found.extra, result)
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
        verify_cache(engine, catalog, mapping, result, repair=repair)
        result.cache_seconds = time.perf_counter() - cache_started
    result.seconds = time.perf_counter() - started
    return result


def _fraction_needed(extra: int, rows: int) -> str:
    return f"{math.ceil(1000 * extra / max(rows, 1)) / 1000:g}"


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
