"""The capture delay, derived from what is measured on each source (issue 20).

The horizon is ``min(source_now - delay, start of the oldest open transaction)``
(:mod:`billing_sync.source.horizon`). When the source shows its open transactions, the
horizon already holds back every row a transaction may still commit below it, however
long it runs: the delay only has to cover what the probe cannot see.

On PostgreSQL that is nothing a change's own stamp can fall into. A stamp taken by the
writing transaction (``now()``: its start) equals the ``xact_start`` that
``pg_stat_activity`` shows until the commit is visible (a backend clears it after it
leaves the proc array); a transaction that starts after ``clock_timestamp()`` was read
stamps above it. What is left is measured, per source:

- the engine's own blind spot (an adapter's ``min_delay_seconds``: MariaDB's
  ``INNODB_TRX`` is refreshed every 0.1 s, see docs/sources.md), and the time the probe
  itself took (``clock_timestamp()`` and the transaction list are two statements): the
  derived delay is the larger of the first and twice the second;
- stamps written by another clock (an application server's, lagging the source's) or a
  transaction the probe does not list: rows then commit below the watermark, which the
  lookback finds as **late rows**. A source that shows one is no longer trusted: its
  delay is the fixed fallback from then on (``capture.delay_seconds``, or
  :data:`FALLBACK_DELAY_SECONDS`), and the lookback keeps catching such rows.

A source whose transactions are not visible (a standby, no ``pg_monitor``, the horizon
switched off) always uses the fixed delay, as does every source when the settings name
``capture.delay_seconds``: an operator's explicit delay wins.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from billing_sync.config import Settings
from billing_sync.source.horizon import Horizon, compute_horizon
from billing_sync.source.session import SourceSession

log = logging.getLogger(__name__)

#: The delay when it cannot be derived (transactions not visible, late rows seen) and the
#: settings name none: the round-1 default.
FALLBACK_DELAY_SECONDS = 1.0


@dataclass
class DerivedDelays:
    """Each source's capture delay: derived while its horizon is trusted, else fixed."""

    configured: float | None  # capture.delay_seconds: an explicit delay always wins
    distrusted: dict[str, str] = field(default_factory=dict)  # system -> why
    probe_seconds: dict[str, float] = field(default_factory=dict)  # system -> last probe

    def fixed(self, minimum: float) -> float:
        """The fixed delay: the configured one, else the fallback (never below the
        engine's blind spot).

        >>> DerivedDelays(None).fixed(1.1), DerivedDelays(0.0).fixed(0.0)
        (1.1, 0.0)
        """
        if self.configured is not None:
            return self.configured
        return max(FALLBACK_DELAY_SECONDS, minimum)

    def seconds(self, system: str, *, transactions_visible: bool, minimum: float) -> float:
        """The delay for ``system``'s next horizon.

        >>> delays = DerivedDelays(None, probe_seconds={"s": 0.002})
        >>> delays.seconds("s", transactions_visible=True, minimum=0.0)
        0.004
        >>> delays.seconds("s", transactions_visible=False, minimum=0.0)
        1.0
        >>> delays.distrust("s", "3 late rows in s.T")
        >>> delays.seconds("s", transactions_visible=True, minimum=0.0)
        1.0
        """
        if self.configured is not None or not transactions_visible or system in self.distrusted:
            return self.fixed(minimum)
        return max(minimum, 2 * self.probe_seconds.get(system, 0.0))

    def probed(self, system: str, seconds: float) -> None:
        """Record how long ``system``'s horizon probe took (its two statements)."""
        self.probe_seconds[system] = seconds

    def distrust(self, system: str, reason: str) -> None:
        """Late rows showed the horizon misses something on ``system``: fixed delay."""
        if self.configured is None and system not in self.distrusted:
            log.warning(
                "%s: %s; the capture delay is no longer derived for this source: %.1f s "
                "from now on (set capture.delay_seconds to choose it)",
                system, reason, FALLBACK_DELAY_SECONDS,
            )  # fmt: skip
        self.distrusted.setdefault(system, reason)


class _Engine(Protocol):
    settings: Settings
    delays: DerivedDelays

    def source(self, system: str) -> SourceSession: ...


def horizon(engine: _Engine, system: str) -> Horizon:
    """``system``'s horizon now (DESIGN §4), with the delay :class:`DerivedDelays` gives."""
    capture = engine.settings.capture
    source = engine.source(system)
    started = time.perf_counter()
    # With no delay: the oldest open transaction older than the source's clock, if any; a
    # delay can only hold the horizon back less far than it (compute_horizon).
    probed = source.horizon(delay=timedelta(0), use_transactions=capture.use_transaction_horizon)
    engine.delays.probed(system, time.perf_counter() - started)
    delay = engine.delays.seconds(
        system,
        transactions_visible=capture.use_transaction_horizon and source.horizon_unavailable is None,
        minimum=source.min_delay_seconds,
    )
    return compute_horizon(
        source_now=probed.source_now, delay=timedelta(seconds=delay),
        oldest_open=probed.held_back_by,
    )  # fmt: skip
