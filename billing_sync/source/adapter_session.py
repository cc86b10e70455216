"""The connection of a source session on an engine other than PostgreSQL: an engine
adapter's read-only SQLAlchemy connection running the capture side's SQL text.

The capture, snapshot and reconcile builders write SQL with ``"quoted"`` identifiers and
``%(name)s`` binds. PyMySQL takes those binds as they are; for the identifiers the
MySQL/MariaDB session adds ``ANSI_QUOTES`` to its ``sql_mode`` (the SQL standard's
quoting, https://mariadb.com/kb/en/sql-mode/#ansi_quotes), so one text serves both
engines; :attr:`AdapterConnection.style` says how the engine wants row values compared
(MariaDB: the expanded ``OR`` form, see :mod:`billing_sync.source.engines.mysql`).
Oracle and Db2 sessions would need the builders compiled per dialect
(:mod:`billing_sync.source.engines.queries`); they are refused here until then.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchTableError

from billing_sync.source.engines import (
    EngineAdapter,
    OldestTransaction,
    ReflectedTable,
    adapter_for,
)
from billing_sync.sql import QueryStyle

log = logging.getLogger(__name__)

FETCH_ROWS = 20_000
"""Rows per ``fetchmany`` from a streaming (unbuffered) cursor: the batch is bounded by
the caller's ``LIMIT``, this bounds the Python tuples alive at once."""

_TEXT_ENGINES = ("mysql",)
_ANSI_QUOTES = "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')"
"""Engines whose sessions run the shared SQL text (ANSI quotes, pyformat binds)."""


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` reaches PostgreSQL (a ``postgresql://`` URL or a conninfo string)."""
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except Exception:  # a libpq conninfo string ("host=... dbname=...") is PostgreSQL's
        return True


class AdapterConnection:
    """One read-only connection through an engine adapter (see the module docstring)."""

    def __init__(self, url: str, *, timezone: str | None) -> None:
        self.adapter: EngineAdapter = adapter_for(url)
        if self.adapter.name == "mysql":
            # PyMySQL's init_command runs on every new connection before SQLAlchemy's
            # first-connect set-up, which then sees ANSI_QUOTES in sql_mode and parses
            # SHOW CREATE TABLE (reflection) with double quotes too.
            ansi = make_url(url).update_query_dict({"init_command": _ANSI_QUOTES})
            self.adapter = adapter_for(ansi)
        if self.adapter.name not in _TEXT_ENGINES:
            raise NotImplementedError(
                f"{self.adapter.name} sources are compiled only: the capture engine reads"
                " PostgreSQL and MySQL/MariaDB sources so far (docs/sources.md)"
            )
        self.adapter.timezone = timezone
        self.connection = self.adapter.connect()
        self.style = QueryStyle(row_values=self.adapter.row_values)

    @property
    def name(self) -> str:
        return self.adapter.name

    def close(self) -> None:
        self.connection.close()
        self.adapter.dispose()

    def one(self, text: str, params: dict[str, Any] | None = None) -> Any:
        return self.connection.exec_driver_sql(text, _params(params)).first()

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
        result = self.connection.execution_options(stream_results=True).exec_driver_sql(
            text, _params(params)
        )
        batches: list[pa.RecordBatch] = []
        try:
            while rows := result.fetchmany(FETCH_ROWS):
                columns = list(zip(*rows, strict=True))
                arrays = [
                    pa.array(values, type=field.type)
                    for values, field in zip(columns, schema, strict=True)
                ]
                batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
        finally:
            result.close()
        return pa.Table.from_batches(batches, schema=schema)


def _params(params: dict[str, Any] | None) -> Any:
    # exec_driver_sql hands a dict straight to the DB-API cursor (pyformat binds).
    return params or None


__all__ = ["FETCH_ROWS", "AdapterConnection", "is_postgres_url"]
