"""The overlap: when each table's region below the watermark is swept for late rows.

A late row is one that commits below the watermark after the watermark passed it: its
transaction ran longer than the capture delay and the horizon could not see it (a
standby, missing privileges). Every ``interval`` seconds, the keys and change
timestamps in ``[caught_up_to - lookback, caught_up_to)`` are read (an index-only
range) and compared with the warehouse; the rows it lacks are fetched and applied as
late rows. Sweeps overlap by ``lookback`` so no stretch of time is left unswept.
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


@dataclass
class Lookback:
    lookback: timedelta
    interval: float
    clock: Callable[[], float] = time.monotonic
    _swept_until: dict[str, datetime] = field(default_factory=dict)
    _swept_at: dict[str, float] = field(default_factory=dict)

    def due(
        self, system: str, mapping: TableMapping, watermark: _Watermark
    ) -> tuple[datetime, datetime] | None:
        """The region to sweep now, or ``None`` when none is due.

        >>> from datetime import datetime, timedelta
        >>> from types import SimpleNamespace
        >>> now = [100.0]
        >>> sweeps = Lookback(timedelta(seconds=30), interval=5, clock=lambda: now[0])
        >>> table = SimpleNamespace(table="PAYMENT")
        >>> mark = SimpleNamespace(caught_up_to=datetime(2026, 1, 1, 12, 0, 0))
        >>> sweeps.due("icoms", table, mark)
        (datetime.datetime(2026, 1, 1, 11, 59, 30), datetime.datetime(2026, 1, 1, 12, 0))
        >>> sweeps.swept("icoms", table, mark.caught_up_to)
        >>> sweeps.due("icoms", table, mark) is None  # not due again for 5 s
        True
        """
        if self.lookback <= timedelta(0) or watermark.caught_up_to is None:
            return None
        name = f"{system}.{mapping.table}"
        if self.clock() - self._swept_at.get(name, float("-inf")) < self.interval:
            return None
        until = watermark.caught_up_to
        since = min(self._swept_until.get(name, until), until) - self.lookback
        return since, until

    def swept(self, system: str, mapping: TableMapping, until: datetime) -> None:
        name = f"{system}.{mapping.table}"
        self._swept_until[name] = until
        self._swept_at[name] = self.clock()
