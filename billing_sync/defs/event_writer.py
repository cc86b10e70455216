"""A sync run's Dagster events, written to the instance off the tier's loop.

``context.log_event`` writes each event to the run's event log before it returns (a
materialization also updates the asset index): 42 ms of every micro-batch on the
peers' one-table bench with SQLite storage (245 batches, 10.4 s), more for a tier of
many tables, and all of it between a batch's commit and the next batch's read. The loop
builds the events (and reads the freshness figures on its own connection) and hands
them here; one thread writes them in order. :meth:`EventWriter.close` waits for the
last and re-raises a write that failed, so a run never ends with events unwritten.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

_STOP = None


class EventWriter:
    """Writes batches of events with ``write`` (``context.log_event``) in one thread.

    >>> written = []
    >>> with EventWriter(written.append) as writer:
    ...     writer.submit(["a", "b"])
    ...     writer.submit(["c"])
    >>> written, writer.events
    (['a', 'b', 'c'], 3)
    """

    def __init__(self, write: Callable[[Any], None]) -> None:
        self._write = write
        self._queue: queue.Queue[Sequence[Any] | None] = queue.Queue()
        self._error: BaseException | None = None
        self.seconds = 0.0  # spent writing, in the thread
        self.events = 0
        self._thread = threading.Thread(target=self._run, name="dagster-events", daemon=True)
        self._thread.start()

    def submit(self, events: Sequence[Any]) -> None:
        """Queue ``events`` (written after those queued before); a failed write is
        raised here, at the next submit."""
        self._raise_failure()
        if events:
            self._queue.put(list(events))

    def close(self) -> None:
        """Write what is queued, stop the thread, raise a write that failed."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while (events := self._queue.get()) is not _STOP:
            if self._error is not None:
                continue  # the run fails at the next submit or at close; drop the rest
            began = time.perf_counter()
            try:
                for event in events:
                    self._write(event)
                    self.events += 1
            except BaseException as error:  # handed to the loop's thread
                self._error = error
            finally:
                self.seconds += time.perf_counter() - began

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # the run is failing already: keep its error
            self.close()
