"""Watermark windows: every capture decision, named in one place.

Decisions (DESIGN §4)
---------------------
Cursor
    The composite ``(change_ts, key...)``, compared as a strict SQL row value, so a
    batch that stops inside a run of rows sharing one timestamp resumes exactly after
    the last row it loaded: nothing skipped, nothing loaded twice. ``change_ts`` is
    ``COALESCE(cursor, cursor_fallback)``: a row never changed since creation counts
    at its creation time. The cursor is stored at the column's native precision.
Horizon
    The exclusive upper bound of a window (computed in :mod:`billing_sync.source.horizon`,
    where each source session probes its clock and open transactions):
    ``min(source_now - delay, start of the oldest open transaction on the source)``.
    A row's change timestamp is at least the start of the transaction that wrote it,
    so no row below the horizon can still appear. The bound is exclusive because an
    open transaction that started exactly at the horizon may still write rows stamped
    with it. ``source_now`` is the source's clock, never the pipeline's.
Bounded batches
    At most ``batch_rows`` rows per query, in cursor order. A full batch means more
    rows may wait below the horizon; the watermark then only moves to the last row.
Caught up to
    When a batch is not full, every row below the horizon has been read: the table is
    caught up to the horizon, which is what freshness is measured against.
Empty windows
    A horizon at or below the cursor's timestamp (a larger delay, an old transaction)
    gives an empty window: nothing is read and nothing moves.
Composite cursors (``cursor_format: cyymmdd_hhmmss``)
    Billers of AS/400 heritage stamp a change as two integers, ``CHG_DATE`` (CYYMMDD)
    and ``CHG_TIME`` (HHMMSS), in local time. The watermark is still stored as
    ``(change_ts, key...)``: ``change_ts`` is the naive local timestamp the pair stands
    for (:mod:`billing_sync.capture.cursor` encodes and decodes). Every query compares
    the raw columns as a tuple, ``(CHG_DATE, CHG_TIME, key...) > (:d, :t, :k...)`` and
    ``(CHG_DATE, CHG_TIME) < (:hd, :ht)``, so the source's index on
    ``(CHG_DATE, CHG_TIME, key...)`` serves them; no expression touches the columns.
Second resolution
    A composite stamp has whole seconds, and so has a timestamp cursor whose source type
    is ``timestamp(0)`` or an Oracle ``DATE`` (the reflected type tells). The horizon is
    floored to the stamp's resolution
    (:func:`~billing_sync.capture.cursor.cursor_horizon`): a transaction open at the
    horizon ``h`` may still write rows stamped ``floor(h)``, so only stamps strictly
    below ``floor(h)`` are complete. Without the floor, a row read at stamp ``s`` could
    be rewritten later with the same stamp ``s``: a new content at an equal version.
    A snapshot has no horizon (it reads every row as it is), so it can read such a row;
    the tail reads the second again once it is complete, and the merge takes an equal
    version whose content differs
    (:data:`~billing_sync.load.merge_sql.NEWER_OR_CHANGED_AT_EQUAL_VERSION`). Thousands
    of rows in one second are the normal case and the key part of the cursor resumes
    inside it.
Local time
    The source session runs in the catalog's ``timezone`` (PostgreSQL ``TimeZone``), so
    ``source_now`` and transaction starts read as ``timestamp`` are local times like the
    stamps they bound, and the horizon needs no conversion. Watermarks, ``caught_up_to``
    and ``_source_version`` of such a catalog are local times too.
Daylight saving
    Spring forward skips an hour: nothing happens. Fall back repeats an hour of local
    time (01:00-02:00 twice in America/Chicago): when the clock goes back, the horizon
    falls below the watermark, windows are empty and the table does not move (its
    freshness lags) until local time passes the watermark again, one hour later. Rows
    written during the repeated hour carry stamps already below the watermark: the
    lookback re-reads ``[caught_up_to - lookback, caught_up_to)`` and so finds those
    of its last ``lookback_seconds`` only (30 s by default); the others are found by
    ``billing-sync verify`` (a key-range hash of the whole table), which repairs them.
    Set ``lookback_seconds`` to 3600 for the night of the change, or run verify after
    it. One case neither repairs: a row changed in both passes of the hour gets a
    newer content with an older stamp, which the version-guarded merge refuses; verify
    reports it stale until the row changes again. A source in UTC has none of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Cursor:
    """A position in a table's change order: the last ``(change_ts, key...)`` loaded."""

    change_ts: datetime
    key: tuple[Any, ...]

    def as_row(self) -> tuple[Any, ...]:
        return (self.change_ts, *self.key)


@dataclass(frozen=True)
class Window:
    """Rows strictly after ``after`` (or from the start) and strictly below ``horizon``."""

    after: Cursor | None
    horizon: datetime
    limit: int

    @property
    def is_empty(self) -> bool:
        return self.after is not None and self.horizon <= self.after.change_ts


@dataclass(frozen=True)
class Advance:
    """Where a table's watermark goes after a batch read from ``window``."""

    cursor: Cursor | None
    caught_up_to: datetime | None
    more_waiting: bool


def advance(window: Window, *, rows_read: int, last_row: Cursor | None) -> Advance:
    """The watermark after reading ``rows_read`` rows of ``window``, ending at ``last_row``.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = datetime(2026, 1, 1)
    >>> w = Window(after=None, horizon=datetime(2026, 1, 2), limit=2)
    >>> advance(w, rows_read=2, last_row=Cursor(t, (5,))).more_waiting
    True
    >>> advance(w, rows_read=1, last_row=Cursor(t, (5,))).caught_up_to
    datetime.datetime(2026, 1, 2, 0, 0)
    """
    if window.is_empty:
        return Advance(cursor=window.after, caught_up_to=None, more_waiting=False)
    cursor = last_row if rows_read else window.after
    if rows_read >= window.limit:
        return Advance(
            cursor=cursor, caught_up_to=last_row.change_ts if last_row else None, more_waiting=True
        )
    return Advance(cursor=cursor, caught_up_to=window.horizon, more_waiting=False)
