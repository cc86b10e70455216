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
from billing_sync.reconcile.verify import DEFAULT_MAX_DELETE_FRACTION, verify_table


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
