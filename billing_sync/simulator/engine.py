"""A live change workload against the simulated billers, one or both at once.

:class:`Workload` runs a daemon thread that commits short business transactions (each
biller's ``operations``) at a target total rate of changed rows per second, paced by a
token bucket (:class:`Pacer`). With several billers the rate splits between them by
``shares`` (ICOMS 60%, Amdocs 40% by default). Each biller gets its own autocommit
connection; every operation is one SQL statement, hence one transaction, all its rows
stamped from the transaction's start.

Example (it needs the simulated billers in a PostgreSQL database at ``url``; the
integration tests run it)::

    with Workload(url, rate=500, systems=("icoms", "amdocs")) as workload:
        time.sleep(10)
    workload.counts()  # changed rows per table, e.g. {'icoms.PAYMENT': 701, ...}
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from bisect import bisect
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from types import TracebackType
from typing import Any

import psycopg
from psycopg import errors

from billing_sync.simulator.drivers import DEFAULT_SHARES, Driver, make_driver
from billing_sync.simulator.mix import operation_weights

log = logging.getLogger(__name__)

APPLICATION_NAME = "billing-sync-workload"
ZERO_ROW_COST = 0.25
"""Tokens an operation that changed no row costs (its account was closed, say)."""
DEFAULT_STATEMENT_BATCH = 200
"""Most accounts one bill-run transaction bills (fewer at low rates)."""

_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)


def statement_batch_for(rate: float, statement_batch: int = DEFAULT_STATEMENT_BATCH) -> int:
    """Accounts per bill run at ``rate`` rows/s: about a quarter second of rows at most."""
    return max(1, min(statement_batch, int(rate / 16)))


class Pacer:
    """Token bucket: how long to wait before spending ``cost`` rows at ``rate`` rows/s.

    Tokens accrue continuously from construction. When the caller falls behind, at most
    ``burst_seconds`` worth of backlog is kept, so a stall is not followed by an unbounded
    catch-up burst.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self._burst = burst_seconds
        self._clock = clock
        self._start = clock()
        self._spent = 0.0

    def wait_time(self, cost: float) -> float:
        """Seconds to wait before ``cost`` tokens are available (0 when they are)."""
        available = self.rate * (self._clock() - self._start) - self._spent
        cap = max(self.rate * self._burst, cost)
        if available > cap:
            self._spent += available - cap
            available = cap
        return 0.0 if available >= cost - 1e-6 else (cost - available) / self.rate

    def spend(self, tokens: float) -> None:
        """Record ``tokens`` rows as done (may exceed what was available)."""
        self._spent += tokens


class Workload:
    """Change rows of the simulated billers at ``rate`` rows per second, in a thread.

    Parameters
    ----------
    url
        PostgreSQL URL of the source database (seeded, see :func:`~billing_sync.simulator.seed`).
    rate
        Target changed rows per second over all billers and tables (about 50 to 5,000).
    seed
        Seed of the :class:`random.Random` choosing operations and values.
    schema
        Schema of the tables when one biller runs (default: the biller's name).
    systems
        Billers to change: ``("icoms",)`` (default), ``("amdocs",)`` or both.
    system
        Shorthand for ``systems=(system,)``.
    urls
        Per-biller URL overriding ``url`` (billers in separate databases).
    shares
        Share of the rate per biller when several run.
    statement_batch
        Most accounts in one bill-run transaction; smaller at low rates.
    synchronous_commit
        False (default): ``synchronous_commit = off`` in the workload's sessions.
    bad_row_share
        Share of changed rows that are bad (ICOMS only; 0 by default), see
        :mod:`~billing_sync.simulator.icoms.bad_rows`.
    hard_deletes
        Whether the rare hard deletes of the mix run (default True).
    """

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        seed: int = 11,
        schema: str | None = None,
        systems: Sequence[str] | None = None,
        system: str | None = None,
        urls: Mapping[str, str] | None = None,
        shares: Mapping[str, float] | None = None,
        statement_batch: int = DEFAULT_STATEMENT_BATCH,
        synchronous_commit: bool = False,
        bad_row_share: float = 0.0,
        hard_deletes: bool = True,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if not 0 <= bad_row_share <= 0.5:
            raise ValueError(f"bad_row_share must be within [0, 0.5], got {bad_row_share}")
        chosen = tuple(systems or ((system,) if system else ("icoms",)))
        if schema is not None and len(chosen) > 1:
            raise ValueError("schema= names one biller's schema; give one system")
        self.rate = float(rate)
        self.systems = chosen
        self.bad_row_share = bad_row_share
        self.statement_batch = statement_batch_for(self.rate, statement_batch)
        self._rng = random.Random(seed)
        self._drivers: dict[str, Driver] = {
            name: make_driver(name, schema=schema or name, rng=self._rng,
                              statement_batch=self.statement_batch)
            for name in chosen
        }  # fmt: skip
        self._urls = {name: (urls or {}).get(name, url) for name in chosen}
        given = shares or DEFAULT_SHARES
        total = sum(given.get(name, 1.0) for name in chosen)
        self._shares = {name: given.get(name, 1.0) / total for name in chosen}
        self._ops = [
            (name, spec)
            for name, driver in self._drivers.items()
            for spec in driver.specs
            if hard_deletes or not spec.hard_delete
        ]
        # Bill runs write about 4 rows per account billed; smaller cycles teach it less.
        self._rows = {
            (name, spec.name): float(4 * self.statement_batch if spec.expected_rows >= 100
                                     else spec.expected_rows)
            for name, spec in self._ops
        }  # fmt: skip
        self._cumulative: tuple[float, ...] = ()
        self._reweigh()
        self._synchronous_commit = synchronous_commit
        self._prefix = len(chosen) > 1
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._operations: dict[str, int] = {}
        self._bad: dict[str, int] = {}
        for name, driver in self._drivers.items():
            for spec in driver.specs:
                for table in spec.tables:
                    self._counts[self._label(name, table)] = 0
                self._operations[self._label(name, spec.name)] = 0
            for kind in driver.bad_kinds:
                self._bad[kind] = 0
        self._retried = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conns: dict[str, psycopg.Connection[Any]] = {}
        self._statements: dict[tuple[str, str], bytes] = {}
        self._error: BaseException | None = None
        self._started_at: float | None = None
        self._stopped_at: float | None = None

    def _label(self, system: str, name: str) -> str:
        return f"{system}.{name}" if len(self.systems) > 1 else name

    def _reweigh(self) -> None:
        weights: list[float] = []
        for name in self._drivers:
            specs = [spec for owner, spec in self._ops if owner == name]
            rows = {spec.name: self._rows[(name, spec.name)] for spec in specs}
            by_name = operation_weights(specs, rows, share=self._shares[name])
            weights.extend(by_name[spec.name] for spec in specs)
        self._cumulative = tuple(accumulate(weights))

    # -- public API ------------------------------------------------------------------
    def start(self) -> None:
        """Connect, read what the billers hold, start the thread.

        Raises
        ------
        RuntimeError
            If the workload was started before.
        psycopg.OperationalError
            If a source cannot be reached.
        """
        if self._thread is not None:
            raise RuntimeError("a Workload can be started once")
        try:
            for name, driver in self._drivers.items():
                conn = psycopg.connect(self._urls[name], autocommit=True,
                                       application_name=APPLICATION_NAME)  # fmt: skip
                self._conns[name] = conn
                conn.execute("SET lock_timeout = '2s'")
                if not self._synchronous_commit:
                    conn.execute("SET synchronous_commit = off")
                driver.load_state(conn)
                for op, text in {**driver.statements(), **driver.bad_statements()}.items():
                    self._statements[(name, op)] = text.encode()
        except BaseException:
            self._close()
            raise
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="billing-sync-workload", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it; re-raise the first error it hit."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout / 2)
            if thread.is_alive():
                for conn in self._conns.values():
                    with contextlib.suppress(psycopg.Error):
                        conn.cancel_safe(timeout=timeout / 4)
                thread.join(timeout / 4)
        if self._stopped_at is None and self._started_at is not None:
            self._stopped_at = time.monotonic()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    @property
    def is_running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def counts(self) -> dict[str, int]:
        """Rows changed (inserted, updated or deleted) so far, per table (``system.TABLE``
        when several billers run)."""
        with self._lock:
            return dict(self._counts)

    def operations(self) -> dict[str, int]:
        """Transactions that changed rows so far, per operation."""
        with self._lock:
            return dict(self._operations)

    def bad_rows(self) -> dict[str, int]:
        """Bad rows injected so far, per kind (see ``bad_row_share``)."""
        with self._lock:
            return dict(self._bad)

    @property
    def retried(self) -> int:
        """Transactions rolled back on a serialization failure, deadlock or lock timeout."""
        return self._retried

    def achieved_rate(self) -> float:
        """Changed rows per second since :meth:`start` (until :meth:`stop`)."""
        if self._started_at is None:
            return 0.0
        end = self._stopped_at or time.monotonic()
        return sum(self.counts().values()) / max(end - self._started_at, 1e-9)

    def __enter__(self) -> Workload:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()

    # -- the thread ------------------------------------------------------------------
    def _close(self) -> None:
        for conn in self._conns.values():
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _run(self) -> None:
        try:
            self._loop()
        except errors.QueryCanceled:
            if not self._stop.is_set():
                self._error = self._error or RuntimeError("workload query was cancelled")
        except BaseException as error:
            log.exception("the change workload failed")
            self._error = error
        finally:
            self._close()
            self._stopped_at = time.monotonic()

    def _loop(self) -> None:
        pacer = Pacer(self.rate)
        rng = self._rng
        while not self._stop.is_set():
            system, spec = self._ops[bisect(self._cumulative, rng.random() * self._cumulative[-1])]
            driver = self._drivers[system]
            params = driver.plan(spec.name)
            if params is None:
                spec = next(s for s in driver.specs if s.name == "open_account")
                params = driver.plan(spec.name)
                assert params is not None
            cost = self._rows[(system, spec.name)]
            while (delay := pacer.wait_time(cost)) > 0:
                if self._stop.wait(min(delay, 0.2)):
                    return
            changed = self._execute(system, spec.name, spec.tables, params)
            if (
                self.bad_row_share
                and driver.bad_kinds
                and rng.random() < self.bad_row_share * max(changed, 1)
            ):
                changed += self._inject_bad_row(system)
            pacer.spend(changed or ZERO_ROW_COST)

    def _execute(
        self, system: str, name: str, tables: tuple[str, ...], params: dict[str, Any]
    ) -> int:
        """Run one operation as one transaction; return the rows it changed."""
        conn = self._conns[system]
        try:
            row = conn.execute(self._statements[(system, name)], params).fetchone()
        except (*_RETRYABLE, errors.UniqueViolation) as error:
            self._retried += 1
            log.debug("workload %s.%s rolled back: %s", system, name, error)
            return 0
        assert row is not None
        changed = 0
        with self._lock:
            for table, rows in zip(tables, row, strict=False):
                self._counts[self._label(system, table)] += rows
                changed += rows
            if changed:
                self._operations[self._label(system, name)] += 1
        self._drivers[system].after(name, params, row)
        learned = self._rows[(system, name)]
        if changed and abs(learned - changed) > 0.05 * learned:
            self._rows[(system, name)] = 0.5 * learned + 0.5 * changed
            self._reweigh()
        return changed

    def _inject_bad_row(self, system: str) -> int:
        driver = self._drivers[system]
        kind = self._rng.choice(driver.bad_kinds)
        planned = driver.bad_row(kind)
        if planned is None:
            return 0
        params, table = planned
        try:
            written = len(
                self._conns[system].execute(self._statements[(system, kind)], params).fetchall()
            )
        except (*_RETRYABLE, errors.UniqueViolation):
            self._retried += 1
            return 0
        with self._lock:
            self._counts[self._label(system, table)] += written
            self._bad[kind] += written
        return written


__all__ = ["DEFAULT_STATEMENT_BATCH", "Pacer", "Workload", "statement_batch_for"]
