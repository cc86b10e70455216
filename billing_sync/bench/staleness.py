"""Per-row staleness of hot rows: how far the warehouse copy of a row lags its latest
committed value, sampled, not per batch (issue 15, item 1; bench ``hot`` and its test).

A writer rewrites a few ICOMS ``ACCOUNT`` rows every ``period`` seconds, each write
setting ``AR_BALANCE`` to the write's number and stamping the row, and records the
instant before each ``COMMIT`` (so a staleness is never under-stated). A sampler reads the
warehouse copies every ``sample_every`` seconds: when a copy shows write ``n`` and write
``n + 1`` had committed by the sample's instant, the copy is stale by the time since that
commit began. The largest and the 99th percentile of those figures are the row's
staleness.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg

from billing_sync.simulator.clock import ICOMS_STAMP_SET

ACCOUNT = 'icoms."ACCOUNT"'


@dataclass
class HotWriter:
    """Rewrites ``keys`` (``SITE_ID``, ``ACCOUNT_NO``) every ``period`` seconds in a thread."""

    source_url: str
    keys: list[tuple[str, str]]
    period: float = 0.3
    started: dict[int, float] = field(default_factory=dict)  # write number -> before COMMIT
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def reset(self) -> None:
        """Set every hot row's balance to write 0 (before the sync drains)."""
        with psycopg.connect(self.source_url, autocommit=True) as conn:
            for key in self.keys:
                conn.execute(
                    f'UPDATE {ACCOUNT} SET "AR_BALANCE" = 0, {ICOMS_STAMP_SET}'
                    ' WHERE ("SITE_ID", "ACCOUNT_NO") = (%s, %s)',
                    key,
                )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hot-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        with psycopg.connect(self.source_url) as conn:
            number = 0
            while not self._stop.is_set():
                number += 1
                began = time.monotonic()
                for key in self.keys:
                    conn.execute(
                        f'UPDATE {ACCOUNT} SET "AR_BALANCE" = %s, {ICOMS_STAMP_SET}'
                        ' WHERE ("SITE_ID", "ACCOUNT_NO") = (%s, %s)',
                        (number, *key),
                    )
                self.started[number] = time.monotonic()
                conn.commit()
                self._stop.wait(max(0.0, self.period - (time.monotonic() - began)))


@dataclass
class Staleness:
    """Samples of the warehouse copies of a :class:`HotWriter`'s rows."""

    samples: list[float] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.samples, default=0.0)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.samples)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sample(
    warehouse_url: str,
    writer: HotWriter,
    *,
    seconds: float,
    sample_every: float = 0.1,
) -> Staleness:
    """Sample the warehouse copies of ``writer``'s rows for ``seconds`` (the writer runs)."""
    found = Staleness()
    deadline = time.monotonic() + seconds
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            for site, account in writer.keys:
                row = conn.execute(
                    "SELECT balance FROM billing.billing_account"
                    " WHERE site_id = %s AND account_number = %s",
                    (site.strip(), account.strip()),
                ).fetchone()
                now = time.monotonic()
                held = int(row[0]) if row is not None and isinstance(row[0], Decimal) else 0
                following = writer.started.get(held + 1)
                found.samples.append(now - following if following is not None else 0.0)
            time.sleep(sample_every)
    return found
