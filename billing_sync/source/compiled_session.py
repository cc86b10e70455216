"""The connection of a source session on Oracle or Db2 (LUW, IBM i): an engine adapter's
read-only SQLAlchemy connection running the builders' SQL compiled by the engine's
dialect.

The capture, snapshot and reconcile builders write these engines' SQL in the adapter's
style (``adapter.style``: ``:name`` binds, ``FETCH FIRST n ROWS ONLY``, row comparisons
expanded into ``OR``s, ``"quoted"`` identifiers as both engines store upper-case names);
:func:`~billing_sync.source.engines.queries.statement` hands the text to the dialect,
which compiles the binds into its driver's style (python-oracledb named, ibm_db and
pyodbc ``?``). Neither engine runs here: the SQL is pinned by tests compiled with the
real dialects (``test_engine_sql``), and this module's transaction and timeout handling
by tests on a stand-in connection (``test_compiled_session``).

Every statement runs in its own transaction, committed at once: on Oracle the adapter's
``begin`` hook makes each one ``SET TRANSACTION READ ONLY``, which also fixes a
read-consistent view for its whole length, so a transaction held across batches would
hide newer rows; on Db2 the grants are the guard (SELECT only). The statement timeout is
the driver's (:meth:`EngineAdapter.set_statement_timeout`), which cancels the statement
on the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy.exc import DBAPIError, NoSuchTableError

from billing_sync.secrets import mask_secrets
from billing_sync.source.adapter_session import StatementTimeout
from billing_sync.source.engines import EngineAdapter, OldestTransaction, ReflectedTable
from billing_sync.source.engines.queries import statement
from billing_sync.source.guarded import guarded_table
from billing_sync.sql import BoundQuery, QueryStyle

FETCH_ROWS = 20_000
"""Rows per ``fetchmany``: the batch is bounded by the query's ``FETCH FIRST``, this
bounds the Python tuples alive at once."""

COMPILED_ENGINES = ("oracle", "db2", "db2-for-i")

log = logging.getLogger(__name__)


class CompiledConnection:
    """One read-only connection to an Oracle or Db2 source (see the module docstring).

    The interface is :class:`~billing_sync.source.adapter_session.AdapterConnection`'s,
    so :class:`~billing_sync.source.session.SourceSession` treats both alike.
    """

    def __init__(
        self, adapter: EngineAdapter, *, timezone: str | None, statement_timeout: float
    ) -> None:
        if adapter.name not in COMPILED_ENGINES:
            raise ValueError(f"{adapter.name} sources do not run compiled statements")
        self.adapter = adapter
        self.adapter.timezone = timezone
        self.statement_timeout = statement_timeout
        self.connection = adapter.connect()
        try:
            adapter.set_statement_timeout(self.connection, statement_timeout)
        except Exception:
            self.connection.close()
            raise
        self.style: QueryStyle = adapter.style

    @property
    def name(self) -> str:
        return self.adapter.name

    def close(self) -> None:
        self.connection.close()
        self.adapter.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self.connection.begin():
                yield
        except DBAPIError as error:
            if self.adapter.timed_out(error):
                raise StatementTimeout(self.adapter.name) from error
            raise

    def one(self, text: str, params: dict[str, Any] | None = None) -> Any:
        with self._transaction():
            result = self.connection.execute(
                statement(self.adapter, BoundQuery(text, {})), dict(params or {})
            )
            return result.first() if result.returns_rows else None

    def source_now(self) -> datetime:
        with self._transaction():
            return self.adapter.source_now(self.connection)

    def oldest_open_transaction(self) -> OldestTransaction | None:
        with self._transaction():
            return self.adapter.oldest_open_transaction(self.connection)

    def horizon_unavailable(self) -> str | None:
        return self.adapter.horizon_unavailable

    def reflect(self, schema: str, tables: list[str]) -> list[ReflectedTable]:
        """The named tables of ``schema`` that exist, through SQLAlchemy's Inspector."""
        found = []
        with self._transaction():
            for table in tables:
                try:
                    found.append(self.adapter.reflect(self.connection, table, schema=schema))
                except NoSuchTableError:
                    continue
        return found

    def read_arrow(self, text: str, params: dict[str, Any], schema: pa.Schema) -> pa.Table:
        """The rows of ``text`` as Arrow: the driver's own Arrow fetch where the engine
        has one (Oracle: python-oracledb's ``fetch_df_batches``), else, or when that
        fetch fails on a value, the cursor in slices through ``guarded_table`` (a value
        Arrow cannot hold costs its row, not the batch)."""
        fast = self._read_arrow_batches(text, params, schema)
        if fast is not None:
            return fast
        batches: list[pa.RecordBatch] = []
        with self._transaction():
            streaming = self.connection.execution_options(stream_results=True)
            result = streaming.execute(statement(self.adapter, BoundQuery(text, {})), params)
            try:
                while rows := result.fetchmany(FETCH_ROWS):
                    columns = list(zip(*rows, strict=True))
                    batches.extend(guarded_table(columns, schema).to_batches())
            finally:
                result.close()
        return pa.Table.from_batches(batches, schema=schema)

    def _read_arrow_batches(
        self, text: str, params: dict[str, Any], schema: pa.Schema
    ) -> pa.Table | None:
        try:
            with self._transaction():
                batches = self.adapter.arrow_batches(
                    self.connection, statement(self.adapter, BoundQuery(text, {})), params,
                    schema, rows=FETCH_ROWS,
                )  # fmt: skip
                if batches is None:
                    return None
                return pa.Table.from_batches(list(batches), schema=schema)
        except StatementTimeout:
            raise
        except Exception as error:  # the driver's own error type: no SQLAlchemy wrapper
            if self.adapter.timed_out(error):
                raise StatementTimeout(self.adapter.name) from error
            # A value the typed Arrow fetch cannot convert fails the whole fetch; the
            # guarded cursor read quarantines that row alone.
            log.warning("%s: Arrow fetch failed (%s); reading through the cursor",
                        self.adapter.name, mask_secrets(str(error)))  # fmt: skip
            return None


__all__ = ["COMPILED_ENGINES", "CompiledConnection"]
