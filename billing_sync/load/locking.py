"""Opening a DuckDB file another process may hold, waiting a bounded time for it.

DuckDB takes an operating-system lock on the database file when a connection opens:
an exclusive one for a read-write connection, a shared one for ``read_only=True``.
Any number of read-only processes can share the file; a writer excludes everyone else,
and one reader excludes the writer. A conflicting open does not wait: it fails at once
with an ``IOException`` ("Could not set lock on file ... Conflicting lock is held").
:func:`open_duckdb` turns that into a short, bounded wait with a jittered retry.

Retrying alone lets readers starve the writer: a reader querying in a loop holds the
file most of the time, and a writer only gets in if it happens to try in a gap. So
:func:`open_duckdb` first passes a gate, an ``flock`` on ``<file>.gate`` beside the
database: a writer takes it exclusively, a reader shared, each only while it opens
the database. A waiting writer therefore stops new readers from opening; the ones
already in finish their query, and the writer gets the file. Readers that open the
file without this module (``duckdb.connect``) do not see the gate, and where the gate
cannot be created (a read-only folder, no ``fcntl``) opening falls back to retries.

Only ``duckdb`` is imported here: analysts' processes load this through the reader.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

try:
    import fcntl
except ImportError:  # Windows: no flock, retries only
    fcntl = None  # type: ignore[assignment]

_LOCK_MESSAGES = ("could not set lock", "conflicting lock")


def is_lock_conflict(error: BaseException) -> bool:
    """True when ``error`` says another process holds the file (not a missing or bad file)."""
    if not isinstance(error, duckdb.IOException):
        return False
    text = str(error).lower()
    return any(message in text for message in _LOCK_MESSAGES)


# What DuckDB says of a file cut short or overwritten (a full disk, a copy that stopped
# half-way): no retry reads it, so the writer sets the file aside and rebuilds it.
_DAMAGE_MESSAGES = ("could not read enough bytes", "not a valid duckdb database file", "checksum")


def is_damaged(error: BaseException) -> bool:
    """True when ``error`` says the database file itself is unreadable (truncated, garbage)."""
    if not isinstance(error, duckdb.Error) or is_lock_conflict(error):
        return False
    text = str(error).lower()
    return any(message in text for message in _DAMAGE_MESSAGES)


@dataclass(frozen=True)
class LockWait:
    """One open of the file: when it ended (``time.time()``), how long it took to get in."""

    at: float
    seconds: float
    waited: bool  # found the file held at least once
    opened: bool  # False: gave up


@dataclass
class LockWaits:
    """Every open of the file (the newest 10,000): how often it was held, for how long."""

    opens: deque[LockWait] = field(default_factory=lambda: deque(maxlen=10_000))

    def record(self, *, attempts: int, seconds: float, opened: bool) -> None:
        self.opens.append(LockWait(time.time(), seconds, attempts > 1, opened))

    def within(self, start: float, end: float) -> LockWaits:
        """The opens that ended between two ``time.time()`` readings."""
        return LockWaits(deque(wait for wait in self.opens if start <= wait.at < end))

    def without(self, start: float, end: float) -> LockWaits:
        """The opens that ended outside that window."""
        return LockWaits(deque(wait for wait in self.opens if not start <= wait.at < end))

    @property
    def waited(self) -> int:
        """Opens that found the file held and got it after waiting."""
        return sum(1 for wait in self.opens if wait.waited and wait.opened)

    @property
    def gave_up(self) -> int:
        return sum(1 for wait in self.opens if not wait.opened)

    def summary(self) -> str:
        waits = [wait.seconds for wait in self.opens if wait.waited and wait.opened]
        figures = (
            f", median {statistics.median(waits) * 1000:.0f} ms, longest {max(waits) * 1000:.0f} ms"
            if waits
            else ""
        )
        return (
            f"{len(self.opens)} opens: {self.waited} waited for the file{figures};"
            f" {self.gave_up} gave up"
        )


def open_duckdb(
    path: Path | str,
    *,
    read_only: bool,
    wait_seconds: float,
    retry_seconds: float = 0.02,
    waits: LockWaits | None = None,
) -> duckdb.DuckDBPyConnection:
    """Connect to ``path``, retrying for up to ``wait_seconds`` while another process holds it.

    Raises
    ------
    duckdb.IOException
        The last lock conflict when the wait ran out, or at once for any other I/O error.
    """
    started = time.monotonic()
    deadline = started + wait_seconds
    attempts = 0
    try:
        with gate(path, exclusive=not read_only, deadline=deadline) as waited:
            attempts += waited
            while True:
                attempts += 1
                try:
                    con = duckdb.connect(str(path), read_only=read_only)
                    break
                except duckdb.IOException as error:
                    now = time.monotonic()
                    if not is_lock_conflict(error) or now >= deadline:
                        raise
                    # Jitter: two processes retrying in step would keep colliding.
                    time.sleep(min(retry_seconds * random.uniform(0.5, 1.5), deadline - now))
    except duckdb.IOException as error:
        if waits is not None and is_lock_conflict(error):
            waits.record(attempts=attempts, seconds=time.monotonic() - started, opened=False)
        raise
    if waits is not None:
        waits.record(attempts=attempts, seconds=time.monotonic() - started, opened=True)
    return con


@contextmanager
def gate(database: Path | str, *, exclusive: bool, deadline: float) -> Iterator[int]:
    """Hold the database's gate (exclusive: a writer, shared: a reader); yields 1 if it waited.

    Raises
    ------
    duckdb.IOException
        A lock conflict (as DuckDB words it) when the gate stayed taken until ``deadline``.
    """
    gate_file = Path(f"{database}.gate")
    descriptor = _open_gate(gate_file)
    if descriptor is None:
        yield 0
        return
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    waited = 0
    try:
        while True:
            try:
                fcntl.flock(descriptor, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise duckdb.IOException(
                        f'Could not set lock on file "{gate_file}": Conflicting lock is held'
                        " (another billing-sync process is opening the cache)"
                    ) from None
                waited = 1
                time.sleep(random.uniform(0.002, 0.01))
        yield waited
    finally:
        os.close(descriptor)  # releases the flock


def _open_gate(gate_file: Path) -> int | None:
    if fcntl is None:
        return None
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        with suppress(OSError):
            return os.open(gate_file, flags, 0o600)  # the service user's, like the cache
    return None
