"""Read-only sessions on the source and reading change batches as Arrow tables."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyarrow as pa
from sqlalchemy.exc import DBAPIError

from billing_sync.secrets import mask_error, mask_secrets
from billing_sync.source.adapter_session import (
    AdapterConnection,
    StatementTimeout,
    is_postgres_url,
)
from billing_sync.source.compiled_session import COMPILED_ENGINES, CompiledConnection
from billing_sync.source.copy_reader import CopyUnsupported, copy_supported, read_copy
from billing_sync.source.drafts import source_table
from billing_sync.source.engines import adapter_class
from billing_sync.source.engines.base import EngineAdapter
from billing_sync.source.engines.postgres import (
    CAPTURE_APPLICATION_NAME,
    HORIZON_VISIBLE_SQL,
    NOW_SQL,
    OLDEST_TRANSACTION_SQL,
)
from billing_sync.source.guarded import guard_loaders, guarded_table
from billing_sync.source.horizon import Horizon, OpenTransaction, compute_horizon
from billing_sync.source.reflect import SourceTable
from billing_sync.sql import POSTGRES_STYLE, BoundQuery, QueryStyle

log = logging.getLogger(__name__)


class SourceUnavailable(RuntimeError):
    """The source cannot be reached; the message names it without its password."""


class SourceTimeout(RuntimeError):
    """A statement on the source ran past the capture's statement timeout."""


DEFAULT_STATEMENT_TIMEOUT_SECONDS = 300.0


class SourceSession:
    """One read-only connection to a source, reused across micro-batches.

    Each statement runs in its own transaction: the horizon query must not see a
    snapshot of ``pg_stat_activity`` older than the change query that follows it. Every
    such transaction is opened ``BEGIN READ ONLY`` and its first statement is ``SET
    LOCAL statement_timeout``. A session default alone is not enough: a statement can
    change it (``set_config('default_transaction_read_only', 'off', false)`` turns the
    next transactions read-write; ``set_config('statement_timeout', '0', false)`` lifts
    the timeout), whereas a transaction's own read-only mode cannot be changed once it
    has run a query. ``default_transaction_read_only`` stays on too, for anything that
    would bypass these transactions. The timeout bounds a runaway statement on the
    biller, which keeps running it even after the client is gone.
    """

    def __init__(
        self,
        url: str,
        *,
        timezone: str | None = None,
        statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        # PostgreSQL: read through binary/CSV COPY where the schema allows (else a
        # cursor); the benchmark and a test switch it off to compare the two paths.
        self.copy_reads = True
        self._url = url
        self._timezone = timezone
        self.statement_timeout = statement_timeout
        self.queries = 0
        self.horizon_unavailable: str | None = None
        self._horizon_checked = False
        # Another engine: its adapter's read-only connection (adapter_session for
        # MySQL/MariaDB, compiled_session for Oracle and Db2).
        self._other: AdapterConnection | CompiledConnection | None = None
        if not is_postgres_url(url):
            try:
                adapter = adapter_class(url)(url)
                if adapter.name in COMPILED_ENGINES:
                    self._other = CompiledConnection(
                        adapter, timezone=timezone, statement_timeout=statement_timeout
                    )
                else:
                    self._other = AdapterConnection(
                        url, timezone=timezone, statement_timeout=statement_timeout
                    )
            except DBAPIError as error:
                reason = mask_error(error.orig or error)
                raise SourceUnavailable(
                    f"cannot reach the source at {mask_secrets(url)}: {reason}"
                ) from None
            return
        # The session's TimeZone is the catalog's: the source clock and transaction starts
        # (read as ``timestamp``) are then local times like the audit columns they bound.
        zone = f" -c TimeZone={timezone}" if timezone else ""
        try:
            self._conn = psycopg.connect(
                url,
                autocommit=True,
                application_name=CAPTURE_APPLICATION_NAME,
                # ISO dates: what COPY ... (FORMAT csv) writes must parse (copy_reader).
                # IntervalStyle: intervals read as text are ISO 8601 (P1DT2H), one form
                # whether COPY or a cursor reads them (source.reflect.TEXT_FORM_FAMILIES).
                options=(
                    "-c default_transaction_read_only=on -c DateStyle=ISO"
                    f" -c IntervalStyle=iso_8601{zone}"
                ),
                connect_timeout=10,
            )
        except psycopg.Error as error:
            # ``from None``: the driver echoes a malformed URL, password included.
            raise SourceUnavailable(
                f"cannot reach the source at {mask_secrets(url)}: {mask_error(error)}"
            ) from None
        self._conn.read_only = True  # psycopg then opens transactions BEGIN READ ONLY

    @property
    def engine(self) -> str:
        """The source's engine: ``postgresql``, ``mysql``."""
        return "postgresql" if self._other is None else self._other.name

    @property
    def adapter(self) -> EngineAdapter | None:
        """The engine adapter of a source that is not PostgreSQL (``None``: PostgreSQL,
        read through psycopg); verify writes its row hash in the adapter's SQL."""
        return None if self._other is None else self._other.adapter

    @property
    def style(self) -> QueryStyle:
        """How this engine wants the shared SQL text's row values compared."""
        return POSTGRES_STYLE if self._other is None else self._other.style

    @property
    def min_delay_seconds(self) -> float:
        """The smallest capture delay under which the horizon probe can miss a
        transaction (MariaDB: 1.1 s, see engines/mysql.py)."""
        return 0.0 if self._other is None else self._other.adapter.min_delay_seconds

    def close(self) -> None:
        if self._other is not None:
            self._other.close()
            return
        self._conn.close()

    def sibling(self) -> SourceSession:
        """Another session like this one (a second connection, e.g. to read ahead)."""
        return SourceSession(
            self._url,
            timezone=self._timezone,
            statement_timeout=self.statement_timeout,
        )

    def __enter__(self) -> SourceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def horizon(self, *, delay: timedelta, use_transactions: bool = True) -> Horizon:
        """``min(source_now - delay, oldest open transaction)``; the delay alone when the
        source does not show its transactions (see :attr:`horizon_unavailable`)."""
        if self._other is not None:
            return self._adapter_horizon(self._other, delay, use_transactions)
        now = self._scalar(NOW_SQL)
        oldest: OpenTransaction | None = None
        if use_transactions and self._transactions_visible():
            row = self._one(OLDEST_TRANSACTION_SQL)
            if row is not None:
                oldest = OpenTransaction(pid=str(row[0]), started_at=row[1])
        return compute_horizon(source_now=now, delay=delay, oldest_open=oldest)

    def _adapter_horizon(
        self,
        other: AdapterConnection | CompiledConnection,
        delay: timedelta,
        use_transactions: bool,
    ) -> Horizon:
        self.queries += 1
        now = other.source_now()
        oldest: OpenTransaction | None = None
        if use_transactions:
            self.queries += 1
            found = other.oldest_open_transaction()  # warns once when not visible
            self.horizon_unavailable = other.horizon_unavailable()
            if found is not None:
                oldest = OpenTransaction(pid=found.id, started_at=found.started_at)
        return compute_horizon(source_now=now, delay=delay, oldest_open=oldest)

    def reflect(self, schema: str, tables: list[str]) -> dict[str, SourceTable]:
        """Another engine's tables, in the catalog check's terms (see reflect_tables)."""
        assert self._other is not None, "PostgreSQL sources reflect through pg_catalog"
        self.queries += 1
        return {t.name: source_table(t) for t in self._other.reflect(schema, tables)}

    def now(self) -> datetime:
        """The source's clock (naive, in the catalog's zone)."""
        if self._other is not None:
            self.queries += 1
            return self._other.source_now()
        value: datetime = self._scalar(NOW_SQL)
        return value

    def _transactions_visible(self) -> bool:
        if not self._horizon_checked:
            self._horizon_checked = True
            self.horizon_unavailable = self._why_transactions_invisible()
            if self.horizon_unavailable:
                log.warning(
                    "the source's open transactions are not visible (%s): the fixed delay "
                    "alone bounds capture windows; rows of transactions longer than the "
                    "delay arrive as late rows or through verify",
                    self.horizon_unavailable,
                )
        return self.horizon_unavailable is None

    def _why_transactions_invisible(self) -> str | None:
        row = self._one(HORIZON_VISIBLE_SQL)
        if row[0]:
            return "the source is a standby; it cannot see the primary's transactions"
        if not row[1]:
            return "the capture user lacks the pg_monitor role"
        return None

    def scalar(self, text: str, params: dict[str, Any] | None = None) -> Any:
        return self._scalar(text, params)

    def read_arrow(self, query: BoundQuery, schema: pa.Schema) -> pa.Table:
        """Run ``query`` and return its rows as an Arrow table of ``schema``.

        On PostgreSQL through ``COPY ... TO STDOUT`` parsed by pyarrow
        (:mod:`billing_sync.source.copy_reader`), else through a cursor.
        """
        self.queries += 1
        if self._other is not None:
            with self._timeout_named():
                return self._other.read_arrow(query.text, query.params, schema)
        if self.copy_reads and copy_supported(schema):
            try:
                with self.transaction():
                    return read_copy(self._conn, query, schema)
            except CopyUnsupported as why:  # e.g. a value out of the type's range
                log.debug("reading through a cursor: %s", why)
        with self.transaction(), self._conn.cursor() as cur:
            guard_loaders(cur)  # 'infinity' or year 10000 costs its row, not the batch
            cur.execute(query.text, query.params)
            rows = cur.fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
        return guarded_table(columns, schema)

    def _scalar(self, text: str, params: dict[str, Any] | None = None) -> Any:
        row = self._one(text, params)
        return None if row is None else row[0]

    def _one(self, text: str, params: dict[str, Any] | None = None) -> Any:
        self.queries += 1
        if self._other is not None:
            with self._timeout_named():
                return self._other.one(text, params)
        with self.transaction():
            return self._conn.execute(text, params).fetchone()

    @contextmanager
    def _timeout_named(self) -> Iterator[None]:
        try:
            yield
        except StatementTimeout as error:
            raise SourceTimeout(
                f"a statement on the source at {mask_secrets(self._url)} ran longer than"
                f" capture.statement_timeout_seconds ({self.statement_timeout:g} s)"
            ) from error

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A read-only transaction with the statement timeout (see the class docstring)."""
        try:
            with self._conn.transaction():
                milliseconds = max(1, round(self.statement_timeout * 1000))
                self._conn.execute(f"SET LOCAL statement_timeout = {milliseconds}")
                yield
        except psycopg.errors.QueryCanceled as error:
            if "statement timeout" not in str(error):
                raise
            raise SourceTimeout(
                f"a statement on the source at {mask_secrets(self._url)} ran longer than"
                f" capture.statement_timeout_seconds ({self.statement_timeout:g} s)"
            ) from error


def source_now(session: SourceSession) -> datetime:
    return session.now()
