"""The horizon: the exclusive upper bound of a capture window, and what holds it back.

``min(source_now - delay, start of the oldest open transaction on the source)``: the
decision is explained with the others in :mod:`billing_sync.capture.window`; it lives
here, beside the reads, because each source session probes its own clock and
transactions (DESIGN §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class OpenTransaction:
    """The oldest open transaction seen on the source, which may hold the horizon back."""

    pid: str
    """The engine's own name for it: a PostgreSQL pid, a MariaDB thread id, an Oracle
    sid, a Db2 application handle, an IBM i job name (``123456/QUSER/QZDASOINIT``)."""
    started_at: datetime


@dataclass(frozen=True)
class Horizon:
    """The exclusive upper bound of a window and why it sits where it does."""

    at: datetime
    source_now: datetime
    held_back_by: OpenTransaction | None = None

    @property
    def hold_seconds(self) -> float:
        """How far an open transaction holds the horizon below ``source_now - delay``."""
        if self.held_back_by is None:
            return 0.0
        return max(0.0, (self.source_now - self.held_back_by.started_at).total_seconds())


def compute_horizon(
    *, source_now: datetime, delay: timedelta, oldest_open: OpenTransaction | None
) -> Horizon:
    """``min(source_now - delay, oldest open transaction's start)``.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> now = datetime(2026, 1, 1, 12, 0, 10)
    >>> compute_horizon(source_now=now, delay=timedelta(seconds=2), oldest_open=None).at
    datetime.datetime(2026, 1, 1, 12, 0, 8)
    >>> old = OpenTransaction(pid="42", started_at=datetime(2026, 1, 1, 12, 0, 1))
    >>> h = compute_horizon(source_now=now, delay=timedelta(seconds=2), oldest_open=old)
    >>> h.at, h.held_back_by.pid
    (datetime.datetime(2026, 1, 1, 12, 0, 1), '42')
    """
    by_delay = source_now - delay
    if oldest_open is not None and oldest_open.started_at < by_delay:
        return Horizon(at=oldest_open.started_at, source_now=source_now, held_back_by=oldest_open)
    return Horizon(at=by_delay, source_now=source_now)
