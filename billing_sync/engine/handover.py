"""The tier lock: one run of a tier syncs at a time; the next one waits warm (issue 15, item 2).

A run of a tier ends after ``batches_per_run`` micro-batches (or its time budget). Starting
the next run only then left the tier without a sync for the seconds a run takes to launch
and import (5-8 s, every 15-30 minutes). Instead the sensor starts the next run while the
current one syncs; the next run sets up and warms its validator, then waits on this lock,
and takes the tier's tables over the moment the current run lets go.

The lock is a PostgreSQL session advisory lock on the warehouse, keyed by the tier
(``pg_try_advisory_lock(int, int)``; docs: "Advisory Lock Functions",
https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS). It is
tried every ``poll`` seconds rather than waited on, so that a paused or stopping run gives
up; and it belongs to a connection of its own, so a run that dies releases it with its
connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

import psycopg

from billing_sync.config import Tier
from billing_sync.secrets import mask_error

LOCK_SPACE = "billing_sync.tier"


class TierLock:
    """The warehouse-wide lock of one tier's (or one tier shard's) tables (module docstring)."""

    def __init__(self, warehouse_url: str, tier: Tier | str, *, poll: float = 0.05) -> None:
        self.tier = tier
        self.poll = poll
        self.waited_seconds = 0.0
        try:
            self._conn = psycopg.connect(
                warehouse_url, autocommit=True, application_name=f"billing-sync-{tier}-lock"
            )
        except psycopg.Error as error:
            raise ConnectionError(f"tier lock {tier}: {mask_error(error)}") from None
        self.held = False

    def acquire(self, *, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait until this run holds the tier (True) or ``should_stop`` says to give up."""
        started = time.monotonic()
        while not should_stop():
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
                (LOCK_SPACE, self.tier),
            ).fetchone()
            if row is not None and row[0]:
                self.held = True
                break
            time.sleep(self.poll)
        self.waited_seconds = time.monotonic() - started
        return self.held

    def release(self) -> None:
        """Hand the tier over (closing the connection releases the session's lock too)."""
        if self.held:
            self._conn.execute(
                "SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", (LOCK_SPACE, self.tier)
            )
            self.held = False
        self._conn.close()

    def __enter__(self) -> TierLock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
