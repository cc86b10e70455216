"""The connection of a source session on an engine other than PostgreSQL: an engine
adapter's read-only SQLAlchemy connection running the capture side's SQL text.

The capture, snapshot and reconcile builders write SQL with ``"quoted"`` identifiers and
``%(name)s`` binds. PyMySQL takes those binds as they are; for the identifiers the
MySQL/MariaDB session adds ``ANSI_QUOTES`` to its ``sql_mode`` (the SQL standard's
quoting, https://mariadb.com/kb/en/sql-mode/#ansi_quotes), so one text serves both
engines; :attr:`AdapterConnection.style` says how the engine wants row values compared
(MariaDB: the expanded ``OR`` form, see :mod:`billing_sync.source.engines.mysql`).
Oracle and Db2 sessions are :mod:`billing_sync.source.compiled_session`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, NoSuchTableError

from billing_sync.source.engines import (
    EngineAdapter,
    OldestTransaction,
    ReflectedTable,
    adapter_for,
)
from billing_sync.source.guarded import guarded_table

log = logging.getLogger(__name__)

FETCH_ROWS = 20_000
"""Rows per ``fetchmany`` from a streaming (unbuffered) cursor: the batch is bounded by
the caller's ``LIMIT``, this bounds the Python tuples alive at once."""

_TEXT_ENGINES = ("mysql",)
# PIPES_AS_CONCAT: ``||`` joins strings, as in the shared SQL text (the unreadable-stamp
# probe's sample); otherwise MariaDB reads it as OR. https://mariadb.com/kb/en/sql-mode/
_ANSI_QUOTES = "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES,PIPES_AS_CONCAT')"
"""Engines whose sessions run the shared SQL text (ANSI quotes, pyformat binds)."""


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` reaches PostgreSQL (a ``postgresql://`` URL or a conninfo string)."""
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except Exception:  # a libpq conninfo string ("host=... dbname=...") is PostgreSQL's
        return True


class StatementTimeout(RuntimeError):
    """A statement ran past the statement timeout (MariaDB 1969, MySQL 3024)."""


_TIMEOUT_CODES = (1969, 3024)


class AdapterConnection:
    """One read-only connection through an engine adapter (see the module docstring).

    As on PostgreSQL (:class:`~billing_sync.source.session.SourceSession`), every
    statement runs in its own ``START TRANSACTION READ ONLY`` (the session default set
    by the adapter could be changed by a statement; a started transaction's mode cannot)
    and carries the statement timeout: MariaDB's ``SET STATEMENT max_statement_time=N
    FOR ...`` (per statement, https://mariadb.com/kb/en/set-statement/), MySQL's session
    ``max_execution_time`` (SELECT only, milliseconds). The biller stops the statement
    itself, which a client-side timeout would not do.
    """

    def __init__(self, url: str, *, timezone: str | None, statement_timeout: float) -> None:
        self.statement_timeout = statement_timeout
        self.adapter: EngineAdapter = adapter_for(url)
        if self.adapter.name == "mysql":
            # PyMySQL's init_command runs on every new connection before SQLAlchemy's
            # first-connect set-up, which then sees ANSI_QUOTES in sql_mode and parses
            # SHOW CREATE TABLE (reflection) with double quotes too.
            ansi = make_url(url).update_query_dict({"init_command": _ANSI_QUOTES})
            self.adapter = adapter_for(ansi)
        if self.adapter.name not in _TEXT_ENGINES:
            raise NotImplementedError(
                f"{self.adapter.name} sources run compiled statements"
                " (billing_sync.source.compiled_session), not this connection"
            )
        self.adapter.timezone = timezone
        self.connection = self.adapter.connect()
        self.mariadb = bool(getattr(self.connection.dialect, "is_mariadb", False))
        if not self.mariadb:
            milliseconds = max(1, round(statement_timeout * 1000))
            self.connection.exec_driver_sql(f"SET SESSION max_execution_time = {milliseconds}")
        # The adapter's whole style: CAST(... AS CHAR) and DIV on MySQL/MariaDB, whose
        # CAST has no TEXT and whose "/" is exact decimal division.
        self.style = self.adapter.style

    @property
    def name(self) -> str:
        return self.adapter.name

    def close(self) -> None:
        self.connection.close()
        self.adapter.dispose()

    def _timed(self, text: str) -> str:
        if not self.mariadb:
            return text
        return f"SET STATEMENT max_statement_time = {self.statement_timeout:g} FOR {text}"

    @contextmanager
    def _read_only(self) -> Iterator[None]:
        self.connection.exec_driver_sql("START TRANSACTION READ ONLY")
        try:
            yield
        except DBAPIError as error:
            self.connection.exec_driver_sql("ROLLBACK")
            code = error.orig.args[0] if error.orig is not None and error.orig.args else None
            if code in _TIMEOUT_CODES:
                raise StatementTimeout(str(code)) from error
            raise
        self.connection.exec_driver_sql("COMMIT")

    def one(self, text: str, params: dict[str, Any] | None = None) -> Any:
        with self._read_only():
            result = self.connection.exec_driver_sql(self._timed(text), _params(params))
            return result.first() if result.returns_rows else None

    def source_now(self) -> datetime:
        return self.adapter.source_now(self.connection)

    def oldest_open_transaction(self) -> OldestTransaction | None:
        return self.adapter.oldest_open_transaction(self.connection)

    def horizon_unavailable(self) -> str | None:
        return self.adapter.horizon_unavailable

    def reflect(self, schema: str, tables: list[str]) -> list[ReflectedTable]:
        """The named tables of ``schema`` that exist, through SQLAlchemy's Inspector."""
        found = []
        for table in tables:
            try:
                found.append(self.adapter.reflect(self.connection, table, schema=schema))
            except NoSuchTableError:
                continue
        return found

    def read_arrow(self, text: str, params: dict[str, Any], schema: pa.Schema) -> pa.Table:
        """The rows of ``text`` as Arrow, fetched from a streaming cursor in slices.

        ConnectorX reads MariaDB 15-20 times faster but is not used: it takes no bind
        parameters (watermark values would become SQL text) and opens its own
        connection, outside this read-only session (docs/sources.md, "Reading into Arrow").
        """
        batches: list[pa.RecordBatch] = []
        with self._read_only():
            streaming = self.connection.execution_options(stream_results=True)
            result = streaming.exec_driver_sql(self._timed(text), _params(params))
            try:
                while rows := result.fetchmany(FETCH_ROWS):
                    columns = list(zip(*rows, strict=True))
                    batches.extend(guarded_table(columns, schema).to_batches())
            finally:
                result.close()
        return pa.Table.from_batches(batches, schema=schema)


def _params(params: dict[str, Any] | None) -> Any:
    # exec_driver_sql hands a dict straight to the DB-API cursor (pyformat binds).
    return params or None


__all__ = ["FETCH_ROWS", "AdapterConnection", "StatementTimeout", "is_postgres_url"]
