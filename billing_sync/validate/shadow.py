"""Great Expectations, off the path to the warehouse: it re-validates what Polars passed.

The tail validates each batch with the suites compiled to Polars
(:mod:`billing_sync.validate.polars_suite`: 0.004 s for 20,000 rows where GX takes
0.1 to 0.4 s), which the unit tests hold to GX's verdicts for every expectation type the
suites use (``billing_sync_tests/unit/test_polars_suite.py``). GX stays the suites'
format and the reference: a background thread validates the same frames again and
compares the verdicts (per expectation: failed or not, how many rows, which rows). A
disagreement is kept for the run to report as a failed check on the entity's
validation; it is also logged.

Which batches: every batch whose Polars verdict found a failure (where a difference
would put rows in quarantine or not), and of the others one per entity every
``sample_seconds`` (0: every batch). At most ``max_waiting`` frames wait; past that a
frame is skipped and counted, so a slow GX never holds memory or the tail back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from billing_sync.validate.report import ValidationReport
from billing_sync.validate.runner import Validator

log = logging.getLogger(__name__)


def verdict(report: ValidationReport) -> list[tuple[Any, ...]]:
    """What two validators must agree on: per failed expectation, its rows."""
    return [
        (f.expectation, f.column, f.unexpected_count, tuple(f.row_positions), f.error is None)
        for f in report.failures
    ]


@dataclass(frozen=True)
class Disagreement:
    entity: str
    rows: int
    polars: list[tuple[Any, ...]]
    great_expectations: list[tuple[Any, ...]]

    @property
    def message(self) -> str:
        return (
            f"{self.entity}: Great Expectations and the compiled Polars suite disagree on a "
            f"batch of {self.rows} rows: Polars failed {self.polars}, Great Expectations "
            f"{self.great_expectations}"
        )


@dataclass
class ShadowValidation:
    """A background Great Expectations check of the frames the hot path validated."""

    validator: Validator
    sample_seconds: float = 30.0
    max_waiting: int = 4
    checked: int = 0
    skipped: int = 0
    _found: list[Disagreement] = field(default_factory=list)
    _last: dict[str, float] = field(default_factory=dict)
    _queue: queue.Queue[tuple[str, pl.DataFrame, ValidationReport] | None] = field(
        default_factory=queue.Queue
    )
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, entity: str, frame: pl.DataFrame, report: ValidationReport) -> bool:
        """Queue ``frame`` (validated by Polars as ``report``) if it is due; whether it was."""
        now = time.monotonic()
        due = not report.success or now - self._last.get(entity, -1e18) >= self.sample_seconds
        if not due or frame.height == 0:
            return False
        if self._queue.qsize() >= self.max_waiting:
            self.skipped += 1
            return False
        self._last[entity] = now
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="gx-shadow", daemon=True)
            self._thread.start()
        self._queue.put((entity, frame, report))
        return True

    def disagreements(self) -> list[Disagreement]:
        """The disagreements found since the last call."""
        with self._lock:
            found, self._found = self._found, []
        return found

    def join(self) -> None:
        """Wait until every queued frame is checked (tests, the end of a run)."""
        self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=60)
            self._thread = None

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._check(*item)
            except Exception:  # a GX crash must not end the tail; it is a finding too
                log.exception("the background Great Expectations check failed")
            finally:
                self._queue.task_done()

    def _check(self, entity: str, frame: pl.DataFrame, report: ValidationReport) -> None:
        reference = self.validator.validate(entity, frame)
        self.checked += 1
        ours, theirs = verdict(report), verdict(reference)
        if ours == theirs and report.success == reference.success:
            return
        found = Disagreement(entity, frame.height, ours, theirs)
        log.error("%s", found.message)
        with self._lock:
            self._found.append(found)
