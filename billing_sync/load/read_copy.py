"""The cache's read copy: the file analysts open, republished after the sync writes.

DuckDB locks a database file against every other process while one writes it, so a
plain ``duckdb.connect(cache, read_only=True)`` fails ("Could not set lock on file")
whenever the sync applies a batch (71 of 123 opens in a 30 s loop, issue 14), and a
reader that keeps the cache open stops the sync applying. Analysts therefore open
another file, ``cache-read.duckdb`` beside ``cache.duckdb``, that nothing writes in place:

1. **Snapshot** (in the process that wrote the cache, between its micro-batches): under
   the cache's read lock (the gate and a read-only open, so no writer changes the file
   meanwhile) its bytes, and a WAL a crash left, are copied to a snapshot in the 0700
   work folder ``<cache>.publish/``. The cache is held only for that file copy.
2. **Convert** (in a background thread, the cache free again): the snapshot's tables and
   views are copied into a new file in DuckDB's ``v1.5.0`` storage format, which both
   the 2.x library the sync uses and the 1.5.x ``duckdb`` command line (the
   ``duckdb-cli`` wheel) read. The 2.x cache itself is unreadable to that command line.
3. **Rename** it (0600) over ``cache-read.duckdb``: atomic, so an open never finds half a file,
   and a reader that has the old file open keeps reading it (its inode) undisturbed.

When: after a micro-batch that left the cache changed (its mtime differs from the read
copy's, which is set to the cache's at the snapshot: any process can tell, so tier runs
in separate processes share no state), once ``interval_seconds`` (default 2) have passed
since the last publish and at least four times the last publish's duration (publishing
costs at most a fifth of the time), and once more when an engine that wrote the cache
closes. One process publishes at a time (an ``flock`` on ``<read copy>.lock``); another
that finds it taken leaves the work to it. So while the sync writes, the read copy trails
the cache by at most the interval plus one publish (:mod:`billing_sync.engine.status`
shows its age). Publishing never fails the sync: a busy cache or a failed copy is logged
and retried after the next micro-batch.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from billing_sync.load.locking import open_duckdb
from billing_sync.private_files import private_dir, private_file

try:
    import fcntl
except ImportError:  # Windows: no flock; publishers in one process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

STORAGE_VERSION = "v1.5.0"  # the newest format the duckdb-cli 1.5.x line reads
DEFAULT_INTERVAL_SECONDS = 2.0
SNAPSHOT_WAIT_SECONDS = 0.5  # a writer holds the cache ~80 ms; longer: next micro-batch
DUTY_FACTOR = 4.0  # publishes at least this many times their own duration apart


def read_copy_path(cache_path: Path) -> Path:
    """``.../cache.duckdb`` -> ``.../cache-read.duckdb``.

    >>> read_copy_path(Path("state/cache.duckdb")).as_posix()
    'state/cache-read.duckdb'
    """
    return cache_path.with_name(f"{cache_path.stem}-read{cache_path.suffix}")


@dataclass(frozen=True)
class Published:
    """One publish: how long the cache was held (snapshot) and how long it all took."""

    path: Path
    as_of: datetime  # the cache's modification time at the snapshot (UTC)
    snapshot_seconds: float
    seconds: float
    size_bytes: int


def published_as_of(cache_path: Path) -> datetime | None:
    """When the cache the read copy was taken from was last written (UTC), or None."""
    try:
        return datetime.fromtimestamp(read_copy_path(cache_path).stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


@dataclass
class ReadCopy:
    """Publishes ``cache_path``'s read copy; see the module's description."""

    cache_path: Path
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    last: Published | None = None
    _worker: threading.Thread | None = field(default=None, repr=False)
    _lock_fd: int | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return read_copy_path(self.cache_path)

    @property
    def _work(self) -> Path:
        # Files are made here with the umask's mode (DuckDB and copyfile choose none): a
        # 0700 folder keeps them private until they are 0600 and renamed into place.
        return private_dir(self.cache_path.with_name(self.cache_path.name + ".publish"))

    @property
    def _snapshot(self) -> Path:
        return self._work / "snapshot.duckdb"

    def stale(self) -> bool:
        """True when the cache was written after the read copy was taken (or there is none)."""
        try:
            cache = self.cache_path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        try:
            return cache != self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return True

    def due(self) -> bool:
        if self.interval_seconds <= 0:  # switched off
            return False
        if self._worker is not None and self._worker.is_alive():
            return False
        if not self.stale():
            return False
        try:
            age = time.time() - self.path.stat().st_ctime  # the rename (or utime) sets it
        except FileNotFoundError:
            return True
        spent = self.last.seconds if self.last else 0.0
        return age >= max(self.interval_seconds, DUTY_FACTOR * spent)

    def publish_if_due(self) -> None:
        """Start a publish when one is due (the snapshot now, the rest in the background)."""
        if self.due():
            self.publish(wait=False)

    def publish(self, *, wait: bool = True) -> Published | None:
        """Publish if the cache changed since the read copy was taken; ``wait``: until done.

        Returns the publish when ``wait`` and it happened; None when nothing changed, the
        cache or the publish lock was held (retried later), or it failed (logged)."""
        self.join()
        if self.interval_seconds <= 0 or not self.stale() or not self._take_lock():
            return None
        started = time.monotonic()
        try:
            as_of = self._take_snapshot()
        except (duckdb.Error, OSError) as error:
            self._release_lock()
            log.info("read copy of %s not published now: %s", self.cache_path, error)
            return None
        held = time.monotonic() - started
        if not wait:
            self._worker = threading.Thread(
                target=self._finish, args=(as_of, started, held), daemon=True,
                name="cache-read-copy",
            )  # fmt: skip
            self._worker.start()
            return None
        self._finish(as_of, started, held)
        return self.last

    def join(self) -> None:
        """Wait for a publish running in the background."""
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _take_snapshot(self) -> int:
        """Copy the cache's bytes under its read lock; the cache's mtime (ns) they match."""
        snapshot = self._snapshot
        _remove(snapshot)
        with open_duckdb(self.cache_path, read_only=True, wait_seconds=SNAPSHOT_WAIT_SECONDS):
            as_of = self.cache_path.stat().st_mtime_ns
            shutil.copyfile(self.cache_path, snapshot)
            wal = Path(f"{self.cache_path}.wal")
            if wal.exists():  # a writer that crashed: its last commits are there
                shutil.copyfile(wal, Path(f"{snapshot}.wal"))
        private_file(snapshot)
        return as_of

    def _finish(self, as_of: int, started: float, held: float) -> None:
        target, fresh = self.path, self._work / "read-copy.duckdb"
        try:
            _remove(fresh)
            _convert(self._snapshot, fresh)
            private_file(fresh)
            os.utime(fresh, ns=(time.time_ns(), as_of))
            with suppress(FileNotFoundError):  # left by a read-write open: not this file's
                Path(f"{target}.wal").unlink()
            os.replace(fresh, target)
            self.last = Published(
                target,
                datetime.fromtimestamp(as_of / 1e9, UTC),
                snapshot_seconds=held,
                seconds=time.monotonic() - started,
                size_bytes=target.stat().st_size,
            )
        except (duckdb.Error, OSError) as error:
            log.warning("could not publish the read copy %s: %s", target, error)
            _remove(fresh)
        finally:
            _remove(self._snapshot)
            self._release_lock()

    def _take_lock(self) -> bool:
        if fcntl is None:
            return True
        descriptor = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process publishes: it takes this change too
            os.close(descriptor)
            return False
        self._lock_fd = descriptor
        return True

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _convert(snapshot: Path, target: Path) -> None:
    """The snapshot's tables and views, in a new file in the 1.5.x storage format."""
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.execute("ATTACH ? AS snapshot (READ_ONLY)", [str(snapshot)])
        con.execute(f"ATTACH ? AS fresh (STORAGE_VERSION '{STORAGE_VERSION}')", [str(target)])
        try:
            con.execute("COPY FROM DATABASE snapshot TO fresh")
        finally:
            con.execute("DETACH fresh")  # checkpoints: no WAL stays beside it
            con.execute("DETACH snapshot")


def _remove(path: Path) -> None:
    for candidate in (path, Path(f"{path}.wal")):
        with suppress(FileNotFoundError):
            candidate.unlink()
