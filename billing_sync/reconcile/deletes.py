"""Hard deletes after a drain: found by verification, applied as ``_is_deleted`` (DESIGN §4).

A row deleted from the source leaves no change for the tail to read; only comparing keys
finds it. :func:`apply_hard_deletes` verifies each table and, where the only differences
are warehouse rows the source no longer has, flags them deleted through the load path
(within the per-run cap). Missing or stale rows are never repaired here: they would be a
capture defect, and hiding it behind a repair would defeat the parity check after it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.reconcile.verify import (
    DEFAULT_MAX_DELETE_FRACTION,
    DeleteCapExceeded,
    verify_table,
)


@dataclass(frozen=True)
class HardDeletes:
    table: str  # system.TABLE
    found: int
    flagged: int
    left_alone: str | None = None  # why nothing was flagged, when something was found


def apply_hard_deletes(
    engine: EnginePort,
    *,
    max_delete_fraction: float = DEFAULT_MAX_DELETE_FRACTION,
    systems: Collection[str] | None = None,
) -> list[HardDeletes]:
    """Flag rows deleted from the source, table by table; one entry per table with any.
    ``systems``: only those systems' tables (default: every one)."""
    found: list[HardDeletes] = []
    for catalog, mapping in engine.tables():
        if systems is not None and catalog.system not in systems:
            continue
        checked = verify_table(engine, catalog, mapping, repair=False, check_cache=False)
        extra = len(checked.warehouse.extra)
        if not extra:
            continue
        if checked.warehouse.missing or checked.warehouse.stale:
            found.append(HardDeletes(checked.name, extra, 0, "missing or stale rows too"))
        elif checked.refused:
            found.append(HardDeletes(checked.name, extra, 0, checked.refused))
        else:
            repaired = verify_table(
                engine, catalog, mapping, repair=True, check_cache=False,
                max_delete_fraction=max_delete_fraction,
            )  # fmt: skip
            found.append(HardDeletes(checked.name, extra, repaired.deleted))
    return found


# Key segments of the minute's compare: each costs one aggregate query per side; with
# index-only scans a segment of 100,000 keys is a few tens of milliseconds on the source.
KEY_SEGMENT_ROWS = 100_000


@dataclass(frozen=True)
class KeyCompare:
    """One table's key compare: what it read on the source and what it flagged."""

    table: str  # system.TABLE
    source_keys: int  # keys the source's index-only scans went over (aggregated there)
    hashes_read: int  # (key, hash) pairs fetched from both sides (differing leaves only)
    segments: int
    found: int  # warehouse rows whose key the source no longer has
    flagged: int
    missing: int  # source keys not in the warehouse and not pending (for the full verify)
    seconds: float
    refused: str | None = None


def flag_deletes_by_keys(
    engine: EnginePort,
    *,
    tiers: tuple[str, ...] = ("priority",),
    max_delete_fraction: float = DEFAULT_MAX_DELETE_FRACTION,
    segment_rows: int = KEY_SEGMENT_ROWS,
) -> list[KeyCompare]:
    """Hard deletes of the tables of ``tiers`` by comparing keys only, flagged at once.

    Run every minute for the priority tier (``defs/deletes.py``), where the full parity
    check (rows, every 10 minutes) would leave a deleted payment live for up to 10
    minutes. The source's cost is one index-only pass over each table's key per run; only
    the aggregates of equal segments cross the network.
    """
    done: list[KeyCompare] = []
    for catalog, mapping in engine.tables():
        if mapping.tier not in tiers:
            continue
        refused: str | None = None
        try:
            v = verify_table(
                engine, catalog, mapping, repair=True, check_cache=False, key_only=True,
                max_delete_fraction=max_delete_fraction, segment_rows=segment_rows,
            )  # fmt: skip
        except DeleteCapExceeded as error:
            v, refused = error.verification, str(error)
        found = KeyCompare(
            v.name, v.source_rows, v.hashes_read, v.segments, len(v.warehouse.extra),
            v.deleted, len(v.warehouse.missing), v.seconds, refused,
        )  # fmt: skip
        done.append(found)
    return done
