"""The overlap: when each table's region below the watermark is swept for late rows.

A late row is one that commits below the watermark after the watermark passed it: its
transaction ran longer than the capture delay and the horizon could not see it (a
standby, missing privileges). Every ``interval`` seconds a **pass** begins over
``[previous pass's end - lookback, caught_up_to)``: the keys and change timestamps there
are read (an index-only range) and compared with the warehouse; the rows it lacks are
fetched and applied as late rows. A row stamped ``t`` that commits up to ``lookback``
after ``t`` is found by the first pass that begins after its commit, however far apart
the passes are, since each pass reaches back ``lookback`` before where the last one
ended.

A pass is read in **slices** of at most ``slice_rows`` keys, one slice per micro-batch,
in change-timestamp order: a pass over 30 s of a table changing 3,500 rows/s is about
100,000 keys, and reading them in one batch held that batch (and every change waiting
for it) for a second or more. The next pass begins once the current one ended and
``interval`` passed since it began, so the sweep costs at most one slice per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from billing_sync.config import TableMapping


class _Watermark(Protocol):
    @property
    def caught_up_to(self) -> datetime | None: ...


@dataclass(frozen=True)
class Slice:
    """The part of a pass to read now: ``[since, until)``, at most ``limit`` keys."""

    since: datetime
    until: datetime
    limit: int


@dataclass
class Lookback:
    lookback: timedelta
    interval: float
    slice_rows: int = 20_000
    clock: Callable[[], float] = time.monotonic
    _swept_until: dict[str, datetime] = field(default_factory=dict)
    _started_at: dict[str, float] = field(default_factory=dict)
    _in_pass: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)

    def due(self, system: str, mapping: TableMapping, watermark: _Watermark) -> Slice | None:
        """The slice to sweep now, or ``None`` when none is due.

        >>> from datetime import datetime, timedelta
        >>> from types import SimpleNamespace
        >>> now = [100.0]
        >>> sweeps = Lookback(timedelta(seconds=30), interval=5, slice_rows=10,
        ...                   clock=lambda: now[0])
        >>> table = SimpleNamespace(table="PAYMENT")
        >>> mark = SimpleNamespace(caught_up_to=datetime(2026, 1, 1, 12, 0, 0))
        >>> first = sweeps.due("icoms", table, mark)
        >>> first.since, first.until, first.limit
        (datetime.datetime(2026, 1, 1, 11, 59, 30), datetime.datetime(2026, 1, 1, 12, 0), 10)

        A full slice ends where its last key was; the pass goes on from there next batch:

        >>> sweeps.swept("icoms", table, first, reached=datetime(2026, 1, 1, 11, 59, 40))
        >>> sweeps.due("icoms", table, mark).since
        datetime.datetime(2026, 1, 1, 11, 59, 40)
        >>> sweeps.swept("icoms", table, sweeps.due("icoms", table, mark), reached=None)
        >>> sweeps.due("icoms", table, mark) is None  # done; the next pass in 5 s
        True
        >>> now[0] = 105.0
        >>> sweeps.due("icoms", table, mark).since  # it reaches back from the last end
        datetime.datetime(2026, 1, 1, 11, 59, 30)
        """
        if self.lookback <= timedelta(0) or watermark.caught_up_to is None:
            return None
        name = f"{system}.{mapping.table}"
        going = self._in_pass.get(name)
        if going is not None:
            return Slice(going[0], going[1], self.slice_rows)
        if self.clock() - self._started_at.get(name, float("-inf")) < self.interval:
            return None
        until = watermark.caught_up_to
        since = min(self._swept_until.get(name, until), until) - self.lookback
        self._started_at[name] = self.clock()
        self._in_pass[name] = (since, until)
        return Slice(since, until, self.slice_rows)

    def swept(
        self, system: str, mapping: TableMapping, done: Slice, *, reached: datetime | None
    ) -> None:
        """``done`` was read: up to ``reached`` (the last key's stamp, the slice was full)
        or whole (``reached`` None: the pass ended)."""
        name = f"{system}.{mapping.table}"
        if reached is not None and done.since < reached < done.until:
            self._in_pass[name] = (reached, done.until)
            return
        self._in_pass.pop(name, None)
        self._swept_until[name] = done.until
