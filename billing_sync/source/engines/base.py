"""What every source engine offers, and the parts all engines share (DESIGN §11).

An :class:`EngineAdapter` holds what differs between source databases and nothing
else: the read-only session, the clock, the horizon probe, the row hash for verify,
the EXPLAIN footprint check, the minimal grants and the fastest read into Arrow.
Connections, reflection and the SQL text of queries are SQLAlchemy's: an adapter
wraps one :class:`~sqlalchemy.engine.Engine` built from the system's URL, and every
query is a Core ``select()`` compiled by the URL's dialect (see :mod:`.queries`).

Adapters are not wired into the sync engine yet; the PostgreSQL capture path keeps its
psycopg session and binary COPY until they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

from billing_sync.source.engines.types import ReflectedTable, reflect_table
from billing_sync.sql import QueryStyle

log = logging.getLogger(__name__)

NULL_TEXT = "\\N"
ESCAPE = "\\"
SEPARATOR = "|"
HASH_HEX_DIGITS = 15
"""The row hash is the first 15 hex digits of the MD5 of the row's canonical text: a
non-negative 60-bit integer, so that every engine can sum millions of them in its
exact decimal type without overflow or signedness differences (see :meth:`row_hash`)."""


class MissingDriver(RuntimeError):
    """The URL's database driver is not installed; the message names the extra."""


class ReadOnlyRefused(RuntimeError):
    """The session could not be made read-only."""


@dataclass(frozen=True)
class OldestTransaction:
    """The oldest open transaction seen on the source (it may hold the horizon back).

    ``id`` is the engine's own name for it (a PostgreSQL pid, a MariaDB thread id, an
    Oracle sid, a Db2 application handle, an IBM i job name); ``age_seconds`` is
    measured on the source's clock.
    """

    id: str
    started_at: datetime
    age_seconds: float


@dataclass(frozen=True)
class ConnectionConfig:
    """The typed parts of a source URL (never its password: see :meth:`masked`)."""

    dialect: str
    driver: str
    host: str | None
    port: int | None
    database: str | None
    username: str | None
    query: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str | URL) -> ConnectionConfig:
        parsed = make_url(url)
        return cls(
            dialect=parsed.get_backend_name(),
            driver=parsed.get_driver_name(),
            host=parsed.host,
            port=parsed.port,
            database=parsed.database,
            username=parsed.username,
            query=dict(parsed.query),
        )

    def masked(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        port = f":{self.port}" if self.port else ""
        return f"{self.dialect}+{self.driver}://{user}{self.host or ''}{port}/{self.database or ''}"


def lit(value: int) -> ColumnElement[Any]:
    """An integer written into the SQL text (a constant of the query's shape, not data)."""
    return sa.literal_column(str(int(value)))


class EngineAdapter:
    """One source database engine. Subclasses set the class attributes and override
    the probes; the base class holds what SQLAlchemy does the same everywhere."""

    name: ClassVar[str] = "generic"
    dialects: ClassVar[tuple[str, ...]] = ()  # SQLAlchemy backend names served
    extra: ClassVar[str | None] = None  # the pip extra that installs the driver
    tested_live: ClassVar[bool] = False
    horizon_grant: ClassVar[str] = "no open-transaction view is known for this engine"
    # Whether ``(a, b) > (x, y)`` is compiled as a row-value comparison; where the
    # optimizer does not use the index for it, the expanded OR form is emitted.
    row_values: ClassVar[bool] = True
    # The smallest fixed delay under which the horizon probe can miss a transaction.
    min_delay_seconds: ClassVar[float] = 0.0
    # How the capture side's SQL text is spelled for this engine (see :attr:`style`).
    named_params: ClassVar[bool] = False
    fetch_first: ClassVar[bool] = False
    text_type: ClassVar[str] = "text"
    integer_type: ClassVar[str] = "bigint"  # what CAST(... AS <integer_type>) names
    integer_division: ClassVar[str] = "/"
    # What the driver's error says when the statement timeout stopped a statement.
    timeout_markers: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, url: str | URL, *, timezone: str | None = None, engine: Engine | None = None
    ) -> None:
        self.url = make_url(url)
        # The session's time zone is the catalog's (None: the server's default), so that
        # the source clock and transaction starts read like the biller's local stamps.
        self.timezone = timezone
        self.config = ConnectionConfig.from_url(self.url)
        self._engine = engine
        self._horizon_warned = False
        self._horizon_checked = False
        self.horizon_unavailable: str | None = None

    # -- connections -------------------------------------------------------------------

    @property
    def dialect(self) -> sa.Dialect:
        """The URL's SQLAlchemy dialect, without importing the driver."""
        return self.dialect_class()()

    def dialect_class(self) -> type[sa.Dialect]:
        try:
            return self.url.get_dialect()
        except Exception as error:  # NoSuchModuleError: the dialect package is missing
            raise self.missing_driver(error) from error

    def missing_driver(self, error: BaseException) -> MissingDriver:
        hint = f": pip install 'billing-sync[{self.extra}]'" if self.extra else ""
        return MissingDriver(
            f"no driver for {self.name} sources ({self.config.masked()}){hint} ({error})"
        )

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = sa.create_engine(self.url, **self.engine_options())
            except ImportError as error:
                raise self.missing_driver(error) from error
        return self._engine

    def engine_options(self) -> dict[str, Any]:
        return {"pool_pre_ping": True}

    def connect(self) -> Connection:
        """A connection on which every write fails (see :meth:`set_read_only`)."""
        connection = self.engine.connect()
        try:
            self.set_read_only(connection)
        except Exception:
            connection.close()
            raise
        return connection

    def set_read_only(self, connection: Connection) -> None:
        """Make ``connection`` read-only for every transaction it runs."""
        raise NotImplementedError

    def set_statement_timeout(self, connection: Connection, seconds: float) -> None:
        """Bound every statement ``connection`` runs to ``seconds``, stopped on the server."""
        raise NotImplementedError(f"{self.name}: no statement timeout")

    def timed_out(self, error: BaseException) -> bool:
        """Whether ``error`` is the statement timeout stopping a statement."""
        text = str(getattr(error, "orig", None) or error)
        return any(marker in text for marker in self.timeout_markers)

    @property
    def style(self) -> QueryStyle:
        """How the capture, snapshot and reconcile builders spell this engine's SQL:
        ``:name`` binds (then compiled by the dialect, :func:`.queries.statement`) or
        ``%(name)s``, ``FETCH FIRST`` or ``LIMIT``, row values or their expansion."""
        return QueryStyle(
            row_values=self.row_values,
            named_params=self.named_params,
            fetch_first=self.fetch_first,
            text_type=self.text_type,
            integer_division=self.integer_division,
        )

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- clock and horizon ---------------------------------------------------------------

    def now_sql(self) -> str:
        raise NotImplementedError

    def source_now(self, connection: Connection) -> datetime:
        """The source's own clock (never the pipeline's), as a naive local timestamp."""
        value: datetime = connection.execute(sa.text(self.now_sql())).scalar_one()
        return self.local_time(value)

    def local_time(self, value: datetime) -> datetime:
        """A timestamp the session read (its clock, a transaction start) in the
        catalog's zone; the session already runs in it unless an engine says otherwise."""
        return value

    def oldest_transaction_sql(self) -> str | None:
        """SQL returning ``(id, started_at, age_seconds)`` of the oldest open transaction
        of another session, or no row; ``None`` where the engine shows none."""
        return None

    def horizon_visible(self, connection: Connection) -> str | None:
        """Why the capture user cannot see other sessions' transactions, or ``None``."""
        return None

    def oldest_open_transaction(self, connection: Connection) -> OldestTransaction | None:
        """The oldest open transaction of any other session, or ``None`` when there is
        none or the user cannot see them; the latter warns once, naming the grant."""
        sql = self.oldest_transaction_sql()
        if sql is None:
            self._warn_once(self.horizon_grant)
            return None
        if not self._horizon_checked:
            self._horizon_checked = True
            reason = self.horizon_visible(connection)
            if reason is not None:
                self._warn_once(reason)
        if self.horizon_unavailable is not None:
            return None
        row = connection.execute(sa.text(sql)).first()
        if row is None:
            return None
        return OldestTransaction(
            id=str(row[0]), started_at=self.local_time(row[1]), age_seconds=float(row[2])
        )

    def _warn_once(self, reason: str) -> None:
        self.horizon_unavailable = reason
        if not self._horizon_warned:
            self._horizon_warned = True
            log.warning(
                "%s source %s: open transactions are not visible (%s); the fixed delay "
                "alone bounds capture windows",
                self.name,
                self.config.masked(),
                reason,
            )

    # -- verify's row hash ---------------------------------------------------------------

    def canonical_text(self, column: ColumnElement[Any], catalog_type: str) -> ColumnElement[Any]:
        r"""``column`` as the text every engine writes for the same value (``\N`` for NULL
        and for empty text, since Oracle cannot tell them apart; text escaped by
        :meth:`escaped`). :mod:`billing_sync.reconcile.row_hash` is the contract in Python."""
        raise NotImplementedError

    def text_literal(self, value: str) -> ColumnElement[Any]:
        """``value`` as this engine's string literal (standard SQL: quotes doubled)."""
        return sa.literal_column("'" + value.replace("'", "''") + "'")

    def null_text(self) -> ColumnElement[Any]:
        r"""The ``\N`` literal as this engine's string syntax writes it."""
        return self.text_literal(NULL_TEXT)

    def escaped(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        r"""``\`` as ``\\`` and ``|`` as ``\|`` (REPLACE is in every engine's SQL): the
        texts joined with ``|`` then split back one way only, and a text ``\N`` is not NULL
        (memo ``a|b`` + name ``c`` and memo ``a`` + name ``b|c`` hash apart)."""
        backslash = sa.func.replace(text, self.text_literal(ESCAPE), self.text_literal(ESCAPE * 2))
        return sa.func.replace(
            backslash, self.text_literal(SEPARATOR), self.text_literal(ESCAPE + SEPARATOR)
        )

    def md5_hex(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        """The 32 hex digits of ``md5(text)`` (either case)."""
        raise NotImplementedError

    def hex_to_int(self, digits: ColumnElement[Any]) -> ColumnElement[Any]:
        """The first 15 hex digits of ``digits`` read as a non-negative integer."""
        raise NotImplementedError

    def row_hash_hex(self, columns: Sequence[tuple[ColumnElement[Any], str]]) -> ColumnElement[Any]:
        """The MD5 (hex) of the row's canonical text; see :meth:`row_hash`."""
        parts: list[ColumnElement[Any]] = []
        for expression, catalog_type in columns:
            if parts:
                parts.append(sa.literal_column(f"'{SEPARATOR}'"))
            parts.append(self.canonical_text(expression, catalog_type))
        return self.md5_hex(self.concat(parts))

    def row_hash(self, columns: Sequence[tuple[ColumnElement[Any], str]]) -> ColumnElement[Any]:
        """The row hash over ``(expression, catalog type)`` pairs in catalog order.

        The contract, the same on every engine and on the warehouse: each value becomes
        its canonical text (:meth:`canonical_text`), the texts are joined with ``|`` in
        catalog order, and the hash is the first 15 hex digits of their MD5 read as an
        integer. So a row whose normalized values are equal hashes equal on a MariaDB
        source and in the PostgreSQL warehouse, and sums of hashes over a key range
        compare exactly.
        """
        return self.hex_to_int(self.row_hash_hex(columns))

    def concat(self, parts: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        result = parts[0]
        for part in parts[1:]:
            result = result.concat(part)
        return result

    # -- footprint, grants, reads ----------------------------------------------------------

    def explain_uses_index(self, connection: Connection, query: sa.Select[Any], index: str) -> bool:
        """Whether the engine's plan for ``query`` reads through ``index``."""
        raise NotImplementedError(f"{self.name}: no EXPLAIN check (compiled-only engine)")

    def grants(self, user: str, tables: Sequence[tuple[str | None, str]]) -> list[str]:
        """The minimal read-only grants for ``user`` on ``(schema, table)`` pairs, and
        the one the horizon probe needs."""
        raise NotImplementedError

    def read_arrow(
        self, connection: Connection, query: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> pa.Table:
        """Run ``query`` and return its rows as Arrow: the generic path, row tuples from
        the DB-API cursor turned into columns. Engines with a faster path override it."""
        result = connection.execute(query, dict(params or {}))
        names = list(result.keys())
        rows = result.fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return pa.table(
            {name: pa.array(values) for name, values in zip(names, columns, strict=True)}
        )

    def arrow_batches(
        self,
        connection: Connection,
        query: sa.TextClause,
        params: Mapping[str, Any],
        schema: pa.Schema,
        *,
        rows: int,
    ) -> Iterator[pa.RecordBatch] | None:
        """The driver's own Arrow read of ``query`` in batches of at most ``rows``, typed
        as ``schema``; None where the engine has none (the session reads the cursor)."""
        return None

    # -- reflection ----------------------------------------------------------------------

    def reflect(
        self, connection: Connection, table: str, schema: str | None = None
    ) -> ReflectedTable:
        """One table through SQLAlchemy's Inspector, types mapped to families."""
        return reflect_table(connection, table, schema)
