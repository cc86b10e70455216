"""What a cursor on ``updated_at`` gets wrong, played on the peers' table
(:mod:`.plain`): each on its own ids, outside the workload's, so that no writer waits
on another's row locks.

- :class:`LongTransaction`: stamps ``rows`` rows at its start (``now()`` is the
  transaction's start) and commits ``hold_seconds`` later, older than what others
  committed meanwhile.
- :func:`same_stamp_burst`: one transaction, so ``rows`` rows share one stamp.
- :func:`hard_deletes`: rows deleted outright (no soft-delete flag).
- :func:`back_dated`: rows stamped ``seconds`` in the past (a writer with a slow clock,
  or one that sets the stamp itself).

:func:`plan` lays the ids out above the workload's range.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from billing_sync.simulator.plain import NOW_UTC, SCHEMA, qualified


@dataclass(frozen=True)
class AdversityIds:
    """Id ranges ``[first, last]`` per adversity; the workload updates ids below ``floor``."""

    long_transaction: tuple[int, int]
    same_stamp: tuple[int, int]
    deletes: tuple[int, int]
    back_dated: tuple[int, int]

    @property
    def floor(self) -> int:
        return self.long_transaction[0]

    def ranges(self) -> dict[str, tuple[int, int]]:
        return {
            "long transaction": self.long_transaction,
            "same stamp": self.same_stamp,
            "hard deletes": self.deletes,
            "back-dated": self.back_dated,
        }


def plan(
    table_rows: int,
    *,
    long_rows: int = 200,
    burst_rows: int = 20_000,
    deletes: int = 50,
    back_dated_rows: int = 100,
) -> AdversityIds:
    """The last ids of a table of ``table_rows`` rows, one range per adversity.

    >>> plan(30_000, burst_rows=1_000).same_stamp
    (29001, 30000)
    """
    reserved = long_rows + burst_rows + deletes + back_dated_rows
    if reserved >= table_rows:
        raise ValueError(f"{reserved:,} rows of adversity need a table of more than that")
    first = table_rows - reserved + 1
    ranges = []
    for count in (long_rows, deletes, back_dated_rows, burst_rows):
        ranges.append((first, first + count - 1))
        first += count
    return AdversityIds(ranges[0], ranges[3], ranges[1], ranges[2])


def _update(stamp: str, schema: str) -> sql.Composed:
    return sql.SQL(
        "UPDATE {} SET balance = balance + 1, status = 'suspended', updated_at = "
        + stamp
        + " WHERE id BETWEEN %s AND %s"
    ).format(qualified(schema))


class LongTransaction:
    """A transaction that updates ids ``[first, last]`` at once, then commits after
    ``hold_seconds`` (in a thread: :meth:`start`, then :meth:`join`)."""

    def __init__(
        self, url: str, ids: tuple[int, int], *, hold_seconds: float, schema: str = SCHEMA
    ) -> None:
        self.url = url
        self.ids = ids
        self.hold_seconds = hold_seconds
        self.schema = schema
        self.rows = 0
        self.committed_at: float | None = None
        self.error: str | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(timeout=30)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url) as conn:  # one transaction until commit
                self.rows = conn.execute(_update(NOW_UTC, self.schema), self.ids).rowcount
                self._started.set()
                time.sleep(self.hold_seconds)
                conn.commit()
                self.committed_at = time.time()
        except psycopg.Error as error:
            self.error = f"long transaction: {error}"
        finally:
            self._started.set()


def same_stamp_burst(
    conn: psycopg.Connection[Any], ids: tuple[int, int], *, schema: str = SCHEMA
) -> int:
    """Update ids ``[first, last]`` in one transaction: one stamp for all. Rows updated."""
    with conn.transaction():
        return conn.execute(_update(NOW_UTC, schema), ids).rowcount


def hard_deletes(
    conn: psycopg.Connection[Any], ids: tuple[int, int], *, schema: str = SCHEMA
) -> int:
    """Delete ids ``[first, last]``. Rows deleted."""
    statement = sql.SQL("DELETE FROM {} WHERE id BETWEEN %s AND %s").format(qualified(schema))
    with conn.transaction():
        return conn.execute(statement, ids).rowcount


def back_dated(
    conn: psycopg.Connection[Any],
    ids: tuple[int, int],
    *,
    seconds: float = 20.0,
    schema: str = SCHEMA,
) -> int:
    """Update ids ``[first, last]`` stamped ``seconds`` before now. Rows updated."""
    stamp = f"({NOW_UTC} - make_interval(secs => {float(seconds)!r}))"
    with conn.transaction():
        return conn.execute(_update(stamp, schema), ids).rowcount
