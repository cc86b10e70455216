"""Quiet tables stay fresh: the sensors' probe moves a caught-up table's ``caught_up_to``.

Freshness is the source clock minus ``caught_up_to``, and only a batch moved that point.
A table nobody changes got no run (the sensor starts one only when the source moved), so
its lag grew without bound and a caught-up table breached its SLA (issue 14). The probe
that decides whether to start a run also proves when a table has nothing to read: then
everything stamped below the horizon is loaded, exactly what an empty batch would record.

Order matters. The horizon is read first: every transaction that can still stamp a row
below it started after it was read, so once the newest change is read *afterwards* and is
not past the cursor, no row below the horizon is missing. Reading them the other way
round, a transaction committing in between would be skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from billing_sync.capture.cursor import cursor_horizon
from billing_sync.capture.regression import newest_change
from billing_sync.capture.window import Cursor
from billing_sync.config import Tier
from billing_sync.engine.parts import EngineParts
from billing_sync.source.horizon import Horizon


@dataclass
class Probe:
    """What one probe found: tables to sync, and caught-up tables whose point moved."""

    behind: list[str] = field(default_factory=list)
    advanced: dict[str, datetime] = field(default_factory=dict)  # "system.TABLE" -> new point
    quiet_entities: set[str] = field(default_factory=set)  # every table of the entity caught up


def is_behind(newest: datetime | None, cursor: Cursor | None) -> bool:
    """A cursor without key values (a snapshot's hand-over point) has not read its own
    timestamp yet, so a change stamped exactly there is behind too.

    >>> from datetime import datetime
    >>> t = datetime(2026, 1, 1)
    >>> is_behind(None, None), is_behind(t, None), is_behind(t, Cursor(t, (1,)))
    (False, True, False)
    >>> is_behind(t, Cursor(t, ()))
    True
    """
    if newest is None:
        return False
    if cursor is None:
        return True
    return newest > cursor.change_ts or (newest == cursor.change_ts and not cursor.key)


def probe(engine: EngineParts, tier: Tier | None = None, *, advance: bool = True) -> Probe:
    """Tables of ``tier`` past their watermark; with ``advance``, every other loaded table's
    ``caught_up_to`` moves up to the horizon (one conditional UPDATE each, none when the
    point is already there)."""
    horizons: dict[str, Horizon] = {}
    found = Probe()
    touched: dict[str, bool] = {}
    for catalog, mapping in engine.tables(tier):
        if advance and catalog.system not in horizons:
            horizons[catalog.system] = engine.horizon(catalog.system)  # before newest_change
        name = f"{catalog.system}.{mapping.table}"
        newest = newest_change(engine.source(catalog.system), catalog, mapping)
        mark = engine.warehouse.watermark(catalog.system, mapping)
        if is_behind(newest, mark.cursor):
            found.behind.append(name)
            touched[mapping.entity] = False
            continue
        touched.setdefault(mapping.entity, True)
        if not advance or mark.cursor is None:  # nothing loaded yet: a run does the first load
            touched[mapping.entity] = mark.cursor is not None and touched[mapping.entity]
            continue
        point = cursor_horizon(mapping, horizons[catalog.system].at)
        if engine.warehouse.mark_caught_up(catalog.system, mapping, mark.cursor, point):
            found.advanced[name] = point
    found.quiet_entities = {entity for entity, quiet in touched.items() if quiet}
    return found
