"""A live change workload against the simulated ICOMS biller.

:class:`Workload` runs a daemon thread with its own connection that commits short
business transactions (:mod:`billing_sync.simulator.operations`) at a target rate of
changed rows per second, paced by a token bucket (:class:`Pacer`). Every row written
gets ``CHG_TS = localtimestamp`` (its transaction's start) and a ``CHG_USER``.

Example
-------
>>> with Workload(url, rate=500) as workload:  # doctest: +SKIP
...     time.sleep(10)
>>> workload.counts()  # doctest: +SKIP
{'ACCOUNT': 2003, 'CUST_SERVICE': 461, 'STATEMENT': 1498, 'PAYMENT': 2052}
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
from types import TracebackType
from typing import Any

import psycopg
from psycopg import errors, sql

from billing_sync.simulator import reference as ref
from billing_sync.simulator.bad_rows import (
    BAD_KINDS,
    BAD_TABLES,
    MANGLED_NAMES,
    bad_row_statements,
)
from billing_sync.simulator.operations import (
    DEFAULT_STATEMENT_BATCH,
    EXPECTED_ROWS,
    MIX,
    MIX_BY_NAME,
    money,
    operation_statements,
    operation_weights,
    statement_batch_for,
)
from billing_sync.simulator.operations import describe_mix as describe_mix
from billing_sync.simulator.schema import TABLES

log = logging.getLogger(__name__)

APPLICATION_NAME = "billing-sync-workload"
RECENT_PAYMENTS = 1_000
"""Reversals pick among the last this many payments of a site (returned cheques)."""
ZERO_ROW_COST = 0.25
"""Tokens an operation that changed no row costs (its account was closed, say)."""

_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)
_MULTI_UNIT = [offer.code for offer in ref.SERVICES if offer.max_quantity > 1]
_SERVICE_CUM = tuple(accumulate(ref.SERVICE_WEIGHTS))
_CREDIT_CUM = tuple(accumulate(ref.CREDIT_WEIGHTS))
_METHOD_CUM = tuple(accumulate(ref.PAY_METHOD_WEIGHTS))
_SITE_CUM = tuple(accumulate(ref.SITE_WEIGHTS))


class Pacer:
    """Token bucket: how long to wait before spending ``cost`` rows at ``rate`` rows/s.

    Tokens accrue continuously from construction. When the caller falls behind (the
    database was slower than the rate), at most ``burst_seconds`` worth of backlog is
    kept, so a stall is not followed by an unbounded catch-up burst.

    Parameters
    ----------
    rate
        Rows per second, > 0.
    burst_seconds
        Largest backlog kept, in seconds of rate.
    clock
        Monotonic clock in seconds (injectable for tests).
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
        # The tolerance absorbs float rounding of the clock difference.
        return 0.0 if available >= cost - 1e-6 else (cost - available) / self.rate

    def spend(self, tokens: float) -> None:
        """Record ``tokens`` rows as done (may exceed what was available)."""
        self._spent += tokens


@dataclass
class _Plan:
    name: str
    params: dict[str, Any]
    cost: float
    after: Callable[[Sequence[Any]], None] | None = None


@dataclass
class _SourceState:
    """What the workload knows of the source: highest numbers in use, statement runs."""

    accounts: dict[str, int] = field(default_factory=dict)
    payments: dict[str, int] = field(default_factory=dict)
    statement_runs: dict[str, tuple[int, str]] = field(default_factory=dict)


class Workload:
    """Change rows of the simulated biller at ``rate`` rows per second, in a thread.

    Each operation is one SQL statement (data-modifying CTEs when it writes several
    tables) sent on an autocommit connection, so it is exactly one short transaction:
    atomic, and all its rows stamped ``CHG_TS = localtimestamp``, the transaction's
    start. Explicit ``BEGIN``/``COMMIT`` would add two round trips per operation and
    cap the rate near 2,500 rows/s here. A serialization failure, deadlock or lock
    timeout (``lock_timeout = 2s``) rolls that one transaction back and the workload
    carries on.

    Parameters
    ----------
    url
        PostgreSQL URL of the source database (seeded, see :func:`~.seed.seed`).
    rate
        Target changed rows per second, over all tables (about 50 to 5,000).
    seed
        Seed of the :class:`random.Random` choosing operations and values.
    schema
        Schema of the biller's tables.
    statement_batch
        Most accounts in one statement-run transaction; at low rates runs are smaller
        (about a quarter second of rows, see
        :func:`~billing_sync.simulator.operations.statement_batch_for`).
    synchronous_commit
        When false (the default), the workload's session sets ``synchronous_commit =
        off``: commits do not wait for the WAL flush. Visibility is unchanged; only
        the simulated biller's own crash durability is relaxed.
    bad_row_share
        Share of changed rows that are bad (0, the default: none): negative payments,
        orphan payments, sentinel dates, mangled encodings
        (:mod:`~billing_sync.simulator.bad_rows`), one row per injection, in its own
        transaction. :meth:`bad_rows` counts them by kind.
    """

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        seed: int = 11,
        schema: str = "icoms",
        statement_batch: int = DEFAULT_STATEMENT_BATCH,
        synchronous_commit: bool = False,
        bad_row_share: float = 0.0,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if not 0 <= bad_row_share <= 0.5:
            raise ValueError(f"bad_row_share must be within [0, 0.5], got {bad_row_share}")
        self.bad_row_share = bad_row_share
        self._bad_statements = bad_row_statements(schema)
        self._bad = dict.fromkeys(BAD_KINDS, 0)
        self.url = url
        self.rate = float(rate)
        self.schema = schema
        self.statement_batch = statement_batch_for(self.rate, statement_batch)
        self._synchronous_commit = synchronous_commit
        self._rng = random.Random(seed)
        self._op_names = tuple(spec.name for spec in MIX)
        self._op_cum: tuple[float, ...] = ()
        self._statements: dict[str, sql.Composed | bytes] = dict(operation_statements(schema))
        # Rows a statement run really writes (cycles can hold fewer accounts than a batch).
        self._statement_rows = 0.0
        self._set_statement_rows(2.0 * self.statement_batch)
        self._state = _SourceState()
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(TABLES, 0)
        self._operations = dict.fromkeys(self._op_names, 0)
        self._retried = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._error: BaseException | None = None
        self._started_at: float | None = None
        self._stopped_at: float | None = None

    # -- public API ------------------------------------------------------------------
    def start(self) -> None:
        """Connect, read the highest account and payment numbers, start the thread.

        Raises
        ------
        RuntimeError
            If the workload was started before.
        psycopg.OperationalError
            If the source cannot be reached.
        """
        if self._thread is not None:
            raise RuntimeError("a Workload can be started once")
        # Autocommit: each operation is one statement, hence its own transaction (BEGIN
        # and COMMIT would cost two more round trips per operation).
        conn = psycopg.connect(self.url, autocommit=True, application_name=APPLICATION_NAME)
        try:
            conn.execute("SET lock_timeout = '2s'")
            if not self._synchronous_commit:
                conn.execute("SET synchronous_commit = off")
            self._load_state(conn)
            self._statements = {
                name: query.as_bytes(conn) if isinstance(query, sql.Composable) else query
                for name, query in self._statements.items()
            }
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="billing-sync-workload", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it; re-raise the first error it hit.

        The current transaction finishes (they last milliseconds); one still running
        after half of ``timeout`` is cancelled.

        Raises
        ------
        BaseException
            The error that ended the thread, if any.
        """
        self._stop.set()
        thread, conn = self._thread, self._conn
        if thread is not None:
            thread.join(timeout / 2)
            if thread.is_alive() and conn is not None:
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
        """True between :meth:`start` and :meth:`stop`, unless the thread failed."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def counts(self) -> dict[str, int]:
        """Rows changed (inserted or updated) so far, per table."""
        with self._lock:
            return dict(self._counts)

    def bad_rows(self) -> dict[str, int]:
        """Bad rows injected so far, per kind (see ``bad_row_share``)."""
        with self._lock:
            return dict(self._bad)

    def operations(self) -> dict[str, int]:
        """Transactions committed so far, per operation of the mix."""
        with self._lock:
            return dict(self._operations)

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
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            with conn.cursor() as cur:
                self._loop(conn, cur)
        except errors.QueryCanceled:
            if not self._stop.is_set():
                self._error = self._error or RuntimeError("workload query was cancelled")
        except BaseException as error:
            log.exception("the change workload failed")
            self._error = error
        finally:
            conn.close()
            self._stopped_at = time.monotonic()

    def _loop(self, conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any]) -> None:
        pacer = Pacer(self.rate)
        rng = self._rng
        while not self._stop.is_set():
            name = self._op_names[bisect(self._op_cum, rng.random() * self._op_cum[-1])]
            plan = self._plan(name) or self._plan("open_account")
            assert plan is not None
            while (delay := pacer.wait_time(plan.cost)) > 0:
                if self._stop.wait(min(delay, 0.2)):
                    return
            changed = self._execute(conn, cur, plan)
            if self.bad_row_share and rng.random() < self.bad_row_share * max(changed, 1):
                changed += self._inject_bad_row(conn, cur)
            # An operation that found nothing to change still costs a little, so that a
            # source with nothing to change is not polled in a tight loop.
            pacer.spend(changed or ZERO_ROW_COST)

    def _execute(self, conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], plan: _Plan) -> int:
        """Run one operation as one transaction; return the rows it changed."""
        try:
            cur.execute(self._statements[plan.name], plan.params)
            row = cur.fetchone()
        except _RETRYABLE as error:
            self._retried += 1
            log.debug("workload %s rolled back: %s", plan.name, error)
            return 0
        except errors.UniqueViolation as error:
            # Someone else took our next number: re-read the highest numbers in use.
            self._retried += 1
            log.info("workload %s: %s; re-reading numbers", plan.name, error)
            self._load_state(conn)
            return 0
        assert row is not None
        tables = MIX_BY_NAME[plan.name].tables
        changed = 0
        with self._lock:
            for table, rows in zip(tables, row, strict=False):
                self._counts[table] += rows
                changed += rows
            if changed:
                self._operations[plan.name] += 1
        if plan.after is not None:
            plan.after(row)
        return changed

    def _inject_bad_row(self, conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any]) -> int:
        """One bad row of a random kind, in its own transaction; returns rows written."""
        rng = self._rng
        picked = self._any_account()
        if picked is None:
            return 0
        site, account = picked
        kind = rng.choice(BAD_KINDS)
        params: dict[str, Any] = {"site": site, "account": account, "user": "BADROW"}
        number = self._state.payments.get(site, 0) + 1
        if kind in ("negative_payment", "orphan_payment"):
            params.update(payment_no=number, amount=money(rng.randint(500, 9000)))
            if kind == "negative_payment":
                params["amount"] = -params["amount"]
            else:  # an account the workload opens a little later
                params["account"] = f"{self._state.accounts.get(site, 0) + rng.randint(1, 3):09d}"
        elif kind == "bad_encoding":
            params["name"] = rng.choice(MANGLED_NAMES)
        try:
            cur.execute(self._bad_statements[kind], params)
            written = len(cur.fetchall())
        except _RETRYABLE:
            self._retried += 1
            return 0
        except errors.UniqueViolation:
            self._retried += 1
            self._load_state(conn)
            return 0
        if kind in ("negative_payment", "orphan_payment") and written:
            self._state.payments[site] = max(self._state.payments.get(site, 0), number)
        with self._lock:
            self._counts[BAD_TABLES[kind]] += written
            self._bad[kind] += written
        return written

    def _set_statement_rows(self, rows: float) -> None:
        """Track the rows of a statement run; keep its share of rows as :data:`MIX` says."""
        self._statement_rows = rows
        weights = operation_weights(rows)
        self._op_cum = tuple(accumulate(weights[name] for name in self._op_names))

    def _load_state(self, conn: psycopg.Connection[Any]) -> None:
        account_table = sql.Identifier(self.schema, "ACCOUNT")
        payment_table = sql.Identifier(self.schema, "PAYMENT")
        rows = conn.execute(
            sql.SQL('SELECT "SITE_ID", max("ACCOUNT_NO") FROM {} GROUP BY 1').format(account_table)
        ).fetchall()
        accounts = {site.strip(): _number(top) for site, top in rows}
        payments = {}
        for site in sorted(set(ref.SITES) | set(accounts)):
            top = conn.execute(
                sql.SQL('SELECT max("PAYMENT_NO") FROM {} WHERE "SITE_ID" = %s').format(
                    payment_table
                ),
                (site,),
            ).fetchone()
            payments[site] = int(top[0]) if top and top[0] is not None else 0
        self._state.accounts = {site: accounts.get(site, 0) for site in payments}
        self._state.payments = payments

    # -- choosing what to do ---------------------------------------------------------
    def _any_account(self) -> tuple[str, str] | None:
        """A site (by size) and an account number in use there."""
        sizes = self._state.accounts
        total = sum(sizes.values())
        if total == 0:
            return None
        point = self._rng.random() * total
        for site, size in sizes.items():
            if point < size:
                return site, f"{1 + int(self._rng.random() * size):09d}"
            point -= size
        site = max(sizes, key=sizes.__getitem__)
        return site, f"{sizes[site]:09d}"

    def _plan(self, name: str) -> _Plan | None:
        rng = self._rng
        state = self._state
        if name == "open_account":
            return self._plan_open_account()
        if name == "reverse_payment":
            sites = [site for site, top in state.payments.items() if top > 0]
            if not sites:
                return None
            site = rng.choice(sites)
            top = state.payments[site]
            number = top - int(rng.random() * min(top, RECENT_PAYMENTS))
            return _Plan(
                name,
                {"site": site, "payment_no": number, "user": rng.choice(ref.PAYMENT_USERS)},
                EXPECTED_ROWS[name],
            )
        if name == "issue_statements":
            return self._plan_statements()
        picked = self._any_account()
        if picked is None:
            return None
        site, account = picked
        params: dict[str, Any] = {
            "site": site,
            "account": account,
            "user": rng.choice(ref.CSR_USERS),
        }
        if name == "post_payment":
            number = state.payments.get(site, 0) + 1
            params.update(
                payment_no=number,
                share=Decimal(1) if rng.random() < 0.7 else Decimal(rng.randint(20, 90)) / 100,
                amount=money(rng.randint(2000, 12000)),
                method=ref.PAY_METHODS[bisect(_METHOD_CUM, rng.random() * _METHOD_CUM[-1])],
                user=rng.choice(ref.PAYMENT_USERS),
            )

            def after(row: Sequence[Any]) -> None:
                if row[0]:
                    state.payments[site] = max(state.payments.get(site, 0), number)

            return _Plan(name, params, EXPECTED_ROWS[name], after)
        if name == "add_service":
            offer = ref.SERVICES[bisect(_SERVICE_CUM, rng.random() * _SERVICE_CUM[-1])]
            rate = offer.rate_cents if rng.random() < 0.8 else offer.rate_cents * 4 // 5
            params.update(
                code=offer.code, rate=money(rate), quantity=rng.randint(1, offer.max_quantity)
            )
        elif name == "change_service":
            reprice = rng.random() < 0.6
            params.update(
                pick=rng.random(),
                factor=Decimal(rng.randint(9000, 11500)) / 10000 if reprice else Decimal(1),
                delta=0 if reprice else rng.choice((-1, 1)),
                multi_unit=_MULTI_UNIT,
            )
        elif name == "disconnect_service":
            params.update(pick=rng.random(), rec_status="D" if rng.random() < 0.1 else "A")
        elif name == "change_account_status":
            params.update(
                from_active="S" if rng.random() < 0.8 else "C",
                from_suspended="A" if rng.random() < 0.75 else "C",
                user=rng.choice((ref.COLLECTIONS_USER, *ref.CSR_USERS)),
            )
        elif name == "update_account_profile":
            params.update(
                name=ref.fake_name(rng),
                credit=ref.CREDIT_CLASSES[bisect(_CREDIT_CUM, rng.random() * _CREDIT_CUM[-1])],
            )
        return _Plan(name, params, EXPECTED_ROWS[name])

    def _plan_open_account(self) -> _Plan:
        rng = self._rng
        state = self._state
        site = ref.SITES[bisect(_SITE_CUM, rng.random() * _SITE_CUM[-1])]
        number = state.accounts.get(site, 0) + 1
        codes: list[str] = []
        occurrences: list[int] = []
        rates: list[Decimal] = []
        quantities: list[int] = []
        for _ in range(rng.randint(1, 4)):
            offer = ref.SERVICES[bisect(_SERVICE_CUM, rng.random() * _SERVICE_CUM[-1])]
            occurrences.append(1 + codes.count(offer.code))
            codes.append(offer.code)
            rates.append(money(offer.rate_cents))
            quantities.append(rng.randint(1, offer.max_quantity))
        params = {
            "site": site,
            "account": f"{number:09d}",
            "name": ref.fake_name(rng),
            "cycle": rng.randint(1, 28),
            "credit": ref.CREDIT_CLASSES[bisect(_CREDIT_CUM, rng.random() * _CREDIT_CUM[-1])],
            "codes": codes,
            "occurrences": occurrences,
            "rates": rates,
            "quantities": quantities,
            "user": rng.choice(ref.CSR_USERS),
        }

        def after(row: Sequence[Any]) -> None:
            if row[0]:
                state.accounts[site] = max(state.accounts.get(site, 0), number)

        return _Plan("open_account", params, 1 + len(codes), after)

    def _plan_statements(self) -> _Plan | None:
        rng = self._rng
        state = self._state
        sizes = {site: size for site, size in state.accounts.items() if size}
        if not sizes:
            return None
        site = rng.choices(list(sizes), weights=list(sizes.values()))[0]
        cycle, after_account = state.statement_runs.get(site, (rng.randint(1, 28), ""))
        batch = self.statement_batch
        params = {
            "site": site,
            "cycle": cycle,
            "after": after_account,
            "batch": batch,
            "user": ref.STATEMENT_USER,
        }

        def after(row: Sequence[Any]) -> None:
            issued, last = row[0], row[2]
            self._set_statement_rows(0.8 * self._statement_rows + 0.2 * max(2 * issued, 1))
            if last is None or issued < batch:
                # This cycle is done: the run moves on to the next one.
                state.statement_runs[site] = (cycle % 28 + 1, "")
            else:
                state.statement_runs[site] = (cycle, last)

        return _Plan("issue_statements", params, self._statement_rows, after)


def _number(account_no: str | None) -> int:
    try:
        return int(account_no or 0)
    except ValueError:
        return 0


__all__ = ["Pacer", "Workload", "describe_mix"]
