"""Deterministic seed data for the simulated ICOMS biller.

Each account gets a history drawn from one :class:`random.Random`: about 3 services,
about 6 monthly statements and about 8 payments, over the two years before ``as_of``.
Balances follow the history (statement charges raise ``AR_BALANCE``, payments lower it,
reversed payments do not count). Statements of one site, bill cycle and date were
written by one statement run and share their ``CRT_TS``, as a batch job stamps them.
About 30% of the rows have ``CHG_TS`` NULL (never changed since their insert); the
others have ``as_of > CHG_TS >= CRT_TS``, a quarter of them ``CHG_TS = CRT_TS``.

Rows go in with ``COPY`` in chunks of :data:`CHUNK_ACCOUNTS` accounts, so memory stays
flat for big seeds; each chunk in ``COALESCE(CHG_TS, CRT_TS)`` order, as a biller's heap
holds rows in the order they were last written. The capture indexes are built after
the load, then the tables are analyzed.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any

import psycopg
from psycopg import sql

from billing_sync.simulator import reference as ref
from billing_sync.simulator.schema import TABLES, create_schema

Row = tuple[Any, ...]

DAY_US = 86_400 * 1_000_000
HISTORY_DAYS = 730
CHUNK_ACCOUNTS = 10_000
NULL_CHG_SHARE = 0.33
"""Share of rows, among those never changed after their insert, with ``CHG_TS`` NULL."""

_SITE_CUM = tuple(accumulate(ref.SITE_WEIGHTS))
_SERVICE_CUM = tuple(accumulate(ref.SERVICE_WEIGHTS))
_CREDIT_CUM = tuple(accumulate(ref.CREDIT_WEIGHTS))
_METHOD_CUM = tuple(accumulate(ref.PAY_METHOD_WEIGHTS))
_SERVICE_COUNTS = (1, 2, 3, 4, 5)
_SERVICE_COUNT_CUM = tuple(accumulate((10, 25, 30, 20, 15)))


def _pick(rng: random.Random, items: tuple[Any, ...], cumulative: tuple[int, ...]) -> Any:
    return items[bisect(cumulative, rng.random() * cumulative[-1])]


def _money(cents: int) -> str:
    """Cents as the text of a ``numeric(…,2)``: ``12345 -> '123.45'``."""
    return f"{cents / 100:.2f}"


@dataclass
class _Service:
    code: str
    occurrence: int
    start_us: int
    rate_cents: int
    quantity: int
    stop_us: int | None = None


@dataclass
class _Generator:
    """Draws rows account by account; its state carries across chunks."""

    rng: random.Random
    as_of: datetime
    start: datetime = field(init=False)
    span_us: int = field(init=False)
    next_account: dict[str, int] = field(default_factory=dict)
    next_payment: dict[str, int] = field(default_factory=dict)
    statement_runs: dict[tuple[str, int, date], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start = self.as_of - timedelta(days=HISTORY_DAYS)
        self.span_us = HISTORY_DAYS * DAY_US
        midnight = datetime.combine(self.start.date(), datetime.min.time())
        self._day_offset_us = (self.start - midnight) // timedelta(microseconds=1)
        self._first_ordinal = self.start.toordinal()

    # -- time helpers (microseconds since ``start``) ---------------------------------
    def ts(self, us: int) -> datetime:
        return self.start + timedelta(microseconds=us)

    def day_of(self, us: int) -> date:
        return date.fromordinal(self._first_ordinal + (us + self._day_offset_us) // DAY_US)

    def us_of(self, day: date) -> int:
        return (datetime.combine(day, datetime.min.time()) - self.start) // timedelta(
            microseconds=1
        )

    def int_in(self, low: int, high: int) -> int:
        """An integer in ``[low, high]`` (faster than :meth:`random.Random.randint`)."""
        return low + int(self.rng.random() * (high - low + 1))

    def one(self, items: tuple[Any, ...]) -> Any:
        return items[int(self.rng.random() * len(items))]

    def between(self, low: int, high: int) -> int:
        """A microsecond in ``[low, high)``, or ``low`` when the range is empty."""
        return low + int(self.rng.random() * (high - low)) if high > low else low

    def changed(self, created_us: int) -> int | None:
        """``CHG_TS`` of a row whose state did not change since its insert."""
        roll = self.rng.random()
        if roll < NULL_CHG_SHARE:
            return None
        if roll < NULL_CHG_SHARE + 0.25:
            return created_us  # inserted with CHG_TS = CRT_TS, as the workload does
        return self.between(created_us, self.span_us)

    def opt_ts(self, us: int | None) -> datetime | None:
        return None if us is None else self.ts(us)

    # -- one account and its history -------------------------------------------------
    def account(self, open_us: int, rows: dict[str, list[Row]]) -> None:
        rng = self.rng
        site: str = _pick(rng, ref.SITES, _SITE_CUM)
        number = self.next_account.get(site, 0) + 1
        self.next_account[site] = number
        account_no = f"{number:09d}"
        cycle = self.int_in(1, 28)
        roll = rng.random()
        status = "A" if roll < 0.88 else "S" if roll < 0.95 else "C"
        end_us = self.span_us
        if status == "C":
            end_us = self.between(open_us + DAY_US, self.span_us)
        services = self._services(open_us, end_us, closed=status == "C")
        balance = self._statements_and_payments(
            site, account_no, cycle, open_us, end_us, services, rows
        )
        self._service_rows(site, account_no, services, rows)
        creator = self.one((ref.MIGRATION_USER, *ref.CSR_USERS))
        if status == "C":
            chg_us: int | None = end_us
            chg_user = self.one(ref.CSR_USERS)
        elif status == "S":
            chg_us = self.between(max(open_us, self.span_us - 60 * DAY_US), self.span_us)
            chg_user = ref.COLLECTIONS_USER
        else:
            chg_us = self.changed(open_us)
            chg_user = creator if chg_us in (None, open_us) else self.one(ref.CSR_USERS)
        rec_status = "D" if status == "C" and rng.random() < 0.2 else "A"
        rows["ACCOUNT"].append((
            site, account_no, ref.fake_name(rng), status, cycle, _money(balance),
            _pick(rng, ref.CREDIT_CLASSES, _CREDIT_CUM), self.ts(open_us),
            self.opt_ts(chg_us), chg_user, rec_status,
        ))  # fmt: skip

    def _services(self, open_us: int, end_us: int, *, closed: bool) -> list[_Service]:
        rng = self.rng
        count: int = _pick(rng, _SERVICE_COUNTS, _SERVICE_COUNT_CUM)
        services: list[_Service] = []
        latest: dict[str, _Service] = {}
        for index in range(count):
            offer: ref.ServiceOffer = _pick(rng, ref.SERVICES, _SERVICE_CUM)
            start_us = open_us if index == 0 else self.between(open_us, (open_us + end_us) // 2)
            previous = latest.get(offer.code)
            if previous is not None:
                # Re-added: the earlier occurrence was disconnected first.
                start_us = min(max(start_us, previous.start_us + DAY_US), end_us - 1)
                previous.stop_us = min(previous.stop_us or start_us, start_us)
            rate = offer.rate_cents if rng.random() < 0.8 else offer.rate_cents * 4 // 5
            service = _Service(
                offer.code,
                (previous.occurrence + 1) if previous else 1,
                start_us,
                rate,
                self.int_in(1, offer.max_quantity),
            )
            if closed:
                service.stop_us = max(end_us, start_us)
            elif rng.random() < 0.08:
                service.stop_us = self.between(start_us, end_us)
            latest[offer.code] = service
            services.append(service)
        return services

    def _service_rows(
        self, site: str, account_no: str, services: list[_Service], rows: dict[str, list[Row]]
    ) -> None:
        rng = self.rng
        for service in services:
            user = self.one(ref.CSR_USERS)
            if service.stop_us is None:
                svc_status, stop_date, rec_status = "A", None, "A"
                chg_us = self.changed(service.start_us)
            else:
                svc_status, stop_date = "D", self.day_of(service.stop_us)
                rec_status = "D" if rng.random() < 0.1 else "A"
                chg_us = max(service.stop_us, service.start_us)
            rows["CUST_SERVICE"].append((
                site, account_no, service.code, service.occurrence,
                self.day_of(service.start_us), stop_date, _money(service.rate_cents),
                service.quantity, svc_status, self.ts(service.start_us),
                self.opt_ts(chg_us), user, rec_status,
            ))  # fmt: skip

    def _statement_dates(self, cycle: int, open_us: int, end_us: int) -> list[date]:
        """Bill dates (day ``cycle`` of each month) after opening and before the end."""
        last = self.day_of(min(end_us, self.span_us - 1))
        first = self.day_of(open_us)
        year, month = last.year, last.month
        dates: list[date] = []
        wanted = self.int_in(5, 8)
        while len(dates) < wanted:
            day = date(year, month, cycle)
            if day <= first:
                break
            if day < last:
                dates.append(day)
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        dates.reverse()
        return dates

    def _statement_run(self, site: str, cycle: int, day: date) -> int:
        """``CRT_TS`` shared by all statements of one run (site, cycle, date)."""
        key = (site, cycle, day)
        if key not in self.statement_runs:
            self.statement_runs[key] = self.us_of(day) + self.between(
                3_600_000_000, 4 * 3_600_000_000
            )
        return self.statement_runs[key]

    def _statements_and_payments(
        self, site: str, account_no: str, cycle: int, open_us: int, end_us: int,
        services: list[_Service], rows: dict[str, list[Row]],
    ) -> int:  # fmt: skip
        """Append the account's statements and payments; return its final balance."""
        rng = self.rng
        dates = self._statement_dates(cycle, open_us, end_us)
        balance = self.one((0, 0, 0, self.int_in(500, 9000))) if len(dates) >= 6 else 0
        for number, day in enumerate(dates, start=1):
            created_us = self._statement_run(site, cycle, day)
            charges = sum(
                service.rate_cents * service.quantity
                for service in services
                if service.start_us <= created_us
                and (service.stop_us is None or service.stop_us > created_us)
            )
            charges = charges * 1075 // 1000 + (self.int_in(0, 1500) if rng.random() < 0.3 else 0)
            previous, balance = balance, balance + charges
            rows["STATEMENT"].append((
                site, account_no, number, day, day + timedelta(days=21), _money(previous),
                _money(charges), _money(balance), self.ts(created_us),
                self.opt_ts(self.changed(created_us)), ref.STATEMENT_USER, "A",
            ))  # fmt: skip
            period_end = (
                self.us_of(dates[number]) if number < len(dates) else min(end_us, self.span_us)
            )
            roll = rng.random()
            amounts: list[int] = []
            if balance > 0 and roll < 0.80:
                if rng.random() < 0.75 and balance > 200:
                    part = balance * self.int_in(30, 70) // 100  # paid in two instalments
                    amounts += [part, balance - part]
                else:
                    amounts.append(balance)
            elif balance > 0 and roll < 0.92:
                amounts.append(balance * self.int_in(40, 90) // 100)
            paid = sorted(
                created_us + self.int_in(2, 25) * DAY_US + self.int_in(0, DAY_US // 2 - 1)
                for _ in amounts
            )
            for amount, paid_us in zip(amounts, paid, strict=True):
                if paid_us < period_end:
                    balance -= self._payment(site, account_no, paid_us, amount, rows)
        return balance

    def _payment(
        self, site: str, account_no: str, paid_us: int, amount: int, rows: dict[str, list[Row]]
    ) -> int:
        """Append one payment; return what it took off the balance (0 if reversed)."""
        rng = self.rng
        number = self.next_payment.get(site, 0) + 1
        self.next_payment[site] = number
        if rng.random() < 0.02:
            status, applied = "R", 0
            chg_us: int | None = self.between(paid_us, min(paid_us + 10 * DAY_US, self.span_us))
        else:
            status, applied = "P", amount
            chg_us = self.changed(paid_us)
        rows["PAYMENT"].append((
            site, number, account_no, self.day_of(paid_us), _money(amount),
            _pick(rng, ref.PAY_METHODS, _METHOD_CUM), status, self.ts(paid_us),
            self.opt_ts(chg_us), self.one(ref.PAYMENT_USERS), "A",
        ))  # fmt: skip
        return applied

    def chunks(self, accounts: int) -> Iterator[dict[str, list[Row]]]:
        """Rows of all tables, :data:`CHUNK_ACCOUNTS` accounts at a time."""
        # Accounts are numbered in the order they were opened.
        # More old accounts than new ones: the customer base built up over the years.
        last = self.span_us - DAY_US
        opened = sorted(int(self.rng.random() ** 2 * last) for _ in range(accounts))
        for first in range(0, accounts, CHUNK_ACCOUNTS):
            rows: dict[str, list[Row]] = {name: [] for name in TABLES}
            for open_us in opened[first : first + CHUNK_ACCOUNTS]:
                self.account(open_us, rows)
            for name, table_rows in rows.items():
                table_rows.sort(key=_change_ts_key(name))
            yield rows


def _change_ts_key(table: str) -> Callable[[Row], datetime]:
    """Sort key ``COALESCE(CHG_TS, CRT_TS)`` of a row of ``table``.

    Rows go in in the order they were last written, as a biller's heap would hold them
    (new row versions land at its end), so the heap correlates with the capture index.
    """
    columns = TABLES[table].column_names
    created, changed = columns.index("CRT_TS"), columns.index("CHG_TS")
    return lambda row: row[changed] or row[created]


def _copy(conn: psycopg.Connection[Any], schema: str, table: str, rows: list[Row]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table),
        sql.SQL(", ").join(map(sql.Identifier, TABLES[table].column_names)),
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _default_as_of(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT date_trunc('day', localtimestamp)").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def seed(
    conn: psycopg.Connection[Any],
    *,
    accounts: int,
    seed: int = 7,
    schema: str = "icoms",
    as_of: datetime | None = None,
) -> dict[str, int]:
    """Create the schema if needed and fill its empty tables with ``accounts`` accounts.

    The rows are a pure function of ``seed`` and ``as_of``. Runs in one transaction
    block (committed here unless the caller has a transaction open), then ``ANALYZE``.

    Parameters
    ----------
    conn
        An open connection to the source database.
    accounts
        Number of ``ACCOUNT`` rows; the other tables get about 3, 6 and 8 rows each.
    seed
        Seed of the :class:`random.Random` that draws every value.
    schema
        The PostgreSQL schema of the tables.
    as_of
        Naive timestamp on the source's clock that the history ends before. Default:
        the start of the current day on the source (``date_trunc('day', localtimestamp)``),
        so that two seeds on the same day are equal.

    Returns
    -------
    dict of str to int
        Rows written per table, keyed by table name.

    Raises
    ------
    ValueError
        If ``accounts`` is negative or any of the tables already holds rows.
    """
    return _fill(conn, accounts=accounts, rng_seed=seed, schema=schema, as_of=as_of)


def _fill(
    conn: psycopg.Connection[Any],
    *,
    accounts: int,
    rng_seed: int,
    schema: str,
    as_of: datetime | None,
) -> dict[str, int]:
    if accounts < 0:
        raise ValueError(f"accounts must be >= 0, got {accounts}")
    create_schema(conn, schema=schema)
    with conn.transaction():
        for table in TABLES:
            query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                sql.Identifier(schema, table)
            )
            found = conn.execute(query).fetchone()
            if found and found[0]:
                raise ValueError(f"{schema}.{table} already holds rows; seed needs empty tables")
        generator = _Generator(random.Random(rng_seed), as_of or _default_as_of(conn))
        # Bulk load: building the secondary indexes once afterwards is faster than
        # maintaining them row by row (the primary keys stay, to catch duplicates).
        for definition in TABLES.values():
            for index in (
                definition.capture_index,
                *(name for name, _ in definition.extra_indexes),
            ):
                conn.execute(
                    sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, index))
                )
        counts = dict.fromkeys(TABLES, 0)
        for rows in generator.chunks(accounts):
            for table, table_rows in rows.items():
                _copy(conn, schema, table, table_rows)
                counts[table] += len(table_rows)
        create_schema(conn, schema=schema)
        for table in TABLES:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, table)))
    return counts


def seed_if_empty(
    conn: psycopg.Connection[Any],
    *,
    accounts: int,
    seed: int = 7,
    schema: str = "icoms",
    as_of: datetime | None = None,
) -> dict[str, int]:
    """Create the schema if needed and seed it unless ``ACCOUNT`` already holds rows.

    Parameters are those of :func:`seed`.

    Returns
    -------
    dict of str to int
        Rows written per table, or an empty dict when the data was already there.
    """
    create_schema(conn, schema=schema)
    with conn.transaction():
        found = conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(schema, "ACCOUNT"))
        ).fetchone()
    if found and found[0]:
        return {}
    return _fill(conn, accounts=accounts, rng_seed=seed, schema=schema, as_of=as_of)
