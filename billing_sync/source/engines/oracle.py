"""Oracle sources (compiled only: no Oracle server runs here).

The SQL comes from SQLAlchemy's built-in ``oracle`` dialect; the driver is
python-oracledb (``pip install 'billing-sync[oracle]'``), whose thin mode needs no
Oracle client libraries.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from billing_sync.source.engines.base import HASH_HEX_DIGITS, EngineAdapter, lit

_DECIMAL_PREFIX = "decimal("
_MICROS_PER_DAY = 86_400_000_000
_MICROS = {"hour": 3_600_000_000, "minute": 60_000_000}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def decimal_format(precision: int, scale: int) -> str:
    """A TO_CHAR format printing ``numeric(p, s)`` as PostgreSQL does: no padding, a
    leading zero, exactly ``scale`` decimals (``0.50``, ``-12.50``).

    >>> decimal_format(12, 2)
    'FM9999999990.00'
    """
    whole = "9" * max(precision - scale - 1, 0) + "0"
    return "FM" + whole + ("." + "0" * scale if scale else "")


class OracleAdapter(EngineAdapter):
    name = "oracle"
    dialects: ClassVar[tuple[str, ...]] = ("oracle",)
    extra = "oracle"
    tested_live = False
    horizon_grant = (
        "the capture user cannot read V$TRANSACTION and V$SESSION"
        " (GRANT SELECT ON SYS.V_$TRANSACTION / SYS.V_$SESSION TO ...)"
    )
    # Oracle compares row values only for equality: (a, b) > (x, y) is not valid SQL.
    row_values = False
    named_params = True  # compiled by the dialect: python-oracledb binds by name
    fetch_first = True  # the row limiting clause, Oracle 12c and later
    text_type = "VARCHAR2(4000)"  # Oracle has no TEXT type; 4000: the standard maximum
    integer_division = "trunc"  # NUMBER / DECIMAL division keeps the fraction
    integer_type = "NUMBER(19)"  # no BIGINT in Oracle SQL; 19 digits hold any int64
    # DPY-4024: python-oracledb's call timeout expired (thin mode); ORA-03156: the same
    # in thick mode (OCI's call timeout).
    timeout_markers = ("DPY-4024", "ORA-03156")

    @property
    def engine(self) -> Engine:
        fresh = self._engine is None
        engine = super().engine
        if fresh:
            # SET TRANSACTION READ ONLY must be the first statement of each transaction;
            # any INSERT/UPDATE/DELETE in it fails with ORA-01456. It also gives the whole
            # transaction one read-consistent view, so the engine commits after each batch.
            # https://docs.oracle.com/en/database/oracle/oracle-database/19/sqlrf/SET-TRANSACTION.html
            @event.listens_for(engine, "begin")
            def _read_only(connection: Connection) -> None:
                cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.close()

        return engine

    def set_read_only(self, connection: Connection) -> None:
        """Each transaction is made read-only as it begins (see :attr:`engine`); a
        read-only database user (only CREATE SESSION and SELECT) is the stronger guard."""

    def set_statement_timeout(self, connection: Connection, seconds: float) -> None:
        # python-oracledb's Connection.call_timeout (milliseconds) bounds each round-trip
        # to the database; past it the driver interrupts the call (a break on the
        # session), so the server stops the statement rather than finish it for nobody.
        # https://python-oracledb.readthedocs.io/en/latest/api_manual/connection.html#Connection.call_timeout
        raw = connection.connection.driver_connection
        raw.call_timeout = max(1, round(seconds * 1000))  # type: ignore[union-attr]

    def now_sql(self) -> str:
        # LOCALTIMESTAMP: the session time zone's current date and time, TIMESTAMP type.
        # https://docs.oracle.com/en/database/oracle/oracle-database/19/sqlrf/LOCALTIMESTAMP.html
        return "SELECT LOCALTIMESTAMP FROM dual"

    def oldest_transaction_sql(self) -> str:
        # V$TRANSACTION lists the active transactions; START_DATE (DATE) is the start
        # time, START_TIME the same as VARCHAR2(20). A transaction appears there once it
        # has written (it then holds an undo segment): one that has only read so far is
        # not listed, so the delay must cover reads before a first write.
        # https://docs.oracle.com/en/database/oracle/oracle-database/19/refrn/V-TRANSACTION.html
        # V$SESSION.TADDR is the address of the session's transaction state object.
        # https://docs.oracle.com/en/database/oracle/oracle-database/19/refrn/V-SESSION.html
        return (
            "SELECT s.sid, CAST(t.start_date AS TIMESTAMP), (SYSDATE - t.start_date) * 86400"
            " FROM v$transaction t JOIN v$session s ON s.taddr = t.addr"
            " WHERE s.sid <> TO_NUMBER(SYS_CONTEXT('USERENV', 'SID'))"
            " ORDER BY t.start_date FETCH FIRST 1 ROWS ONLY"
        )

    def horizon_visible(self, connection: Connection) -> str | None:
        try:
            connection.exec_driver_sql("SELECT 1 FROM v$transaction WHERE 1 = 0").all()
        except DBAPIError:  # ORA-00942: table or view does not exist (no grant)
            return self.horizon_grant
        return None

    def canonical_text(self, column: ColumnElement[Any], catalog_type: str) -> ColumnElement[Any]:
        text: ColumnElement[Any]
        if catalog_type == "text":
            # Oracle stores '' as NULL: the contract maps empty text to \N everywhere.
            # REPLACE of NULL is NULL: https://docs.oracle.com/en/database/oracle/oracle-database/19/sqlrf/REPLACE.html
            text = self.escaped(sa.func.rtrim(sa.cast(column, sa.String(4000))))
        elif catalog_type == "date":
            days = sa.func.trunc(column) - sa.literal_column("DATE '2000-01-01'")
            text = sa.func.to_char(days)
        elif catalog_type == "timestamp":
            value = sa.cast(column, sa.TIMESTAMP())
            day = sa.func.trunc(sa.cast(column, sa.Date)) - sa.literal_column("DATE '1970-01-01'")
            micros = (
                day * lit(_MICROS_PER_DAY)
                + sa.extract("hour", value) * lit(_MICROS["hour"])
                + sa.extract("minute", value) * lit(_MICROS["minute"])
                + sa.func.round(sa.extract("second", value) * lit(1_000_000))
            )
            text = sa.func.to_char(micros)
        elif catalog_type in ("integer", "bigint"):
            text = sa.func.to_char(sa.func.trunc(column))
        elif catalog_type == "boolean":
            text = sa.case(
                (column != lit(0), sa.literal_column("'true'")),
                (column == lit(0), sa.literal_column("'false'")),
            )
        elif catalog_type.startswith(_DECIMAL_PREFIX):
            precision, scale = (int(n) for n in catalog_type[len(_DECIMAL_PREFIX) : -1].split(","))
            rounded = sa.func.round(column, lit(scale))
            text = sa.func.to_char(
                rounded, sa.literal_column(f"'{decimal_format(precision, scale)}'")
            )
        else:
            raise ValueError(f"no canonical text for catalog type {catalog_type!r}")
        return sa.func.coalesce(text, self.null_text())

    def md5_hex(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        # STANDARD_HASH(expr, 'MD5') returns RAW(16); RAWTOHEX gives 32 hex digits.
        # https://docs.oracle.com/en/database/oracle/oracle-database/19/sqlrf/STANDARD_HASH.html
        return sa.func.rawtohex(sa.func.standard_hash(text, sa.literal_column("'MD5'")))

    def hex_to_int(self, digits: ColumnElement[Any]) -> ColumnElement[Any]:
        # TO_NUMBER with an X format model reads hexadecimal.
        head = sa.func.substr(digits, lit(1), lit(HASH_HEX_DIGITS))
        return sa.func.to_number(head, sa.literal_column(f"'{'X' * HASH_HEX_DIGITS}'"))

    def grants(self, user: str, tables: Sequence[tuple[str | None, str]]) -> list[str]:
        statements = [f"GRANT CREATE SESSION TO {user}"]
        for schema, table in tables:
            name = f"{_quote(schema)}.{_quote(table)}" if schema else _quote(table)
            statements.append(f"GRANT SELECT ON {name} TO {user}")
        statements.append(f"GRANT SELECT ON SYS.V_$TRANSACTION TO {user}")  # horizon probe
        statements.append(f"GRANT SELECT ON SYS.V_$SESSION TO {user}")
        return statements

    def read_arrow(
        self, connection: Connection, query: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> pa.Table:
        """python-oracledb's own Arrow fetch (``fetch_df_all``, oracledb 3+), which skips
        Python row objects; the generic cursor path with older drivers."""
        raw = connection.connection.driver_connection
        fetch = getattr(raw, "fetch_df_all", None)
        if fetch is None or not isinstance(query, sa.ClauseElement):
            return super().read_arrow(connection, query, params)
        compiled = query.compile(dialect=connection.dialect)
        frame = fetch(compiled.string, {**compiled.params, **(params or {})})
        return pa.table(frame)

    def df_batches(self, driver_connection: Any) -> Callable[..., Any] | None:
        """The driver's ``Connection.fetch_df_batches`` when it takes ``requested_schema``
        (python-oracledb 3.4 and later), else None: without it the frames' types would be
        the driver's guesses (a NUMBER as a double), not the batch's."""
        fetch = getattr(driver_connection, "fetch_df_batches", None)
        if fetch is None:
            return None
        try:
            parameters = inspect.signature(fetch).parameters
        except (TypeError, ValueError):  # no signature to read: assume the older driver
            return None
        return fetch if "requested_schema" in parameters else None

    def arrow_batches(
        self,
        connection: Connection,
        query: sa.TextClause,
        params: Mapping[str, Any],
        schema: pa.Schema,
        *,
        rows: int,
    ) -> Iterator[pa.RecordBatch] | None:
        """``query``'s rows as Arrow record batches of at most ``rows``, straight from
        python-oracledb's data frame fetch: no Python row objects, columns built by the
        driver in the Arrow types of ``schema`` (``requested_schema``), each frame handed
        over through the Arrow PyCapsule interface. None when the driver has no such
        fetch (the caller reads through the cursor).
        https://python-oracledb.readthedocs.io/en/latest/api_manual/connection.html#Connection.fetch_df_batches
        https://python-oracledb.readthedocs.io/en/latest/user_guide/dataframes.html
        """
        fetch = self.df_batches(connection.connection.driver_connection)
        if fetch is None:
            return None
        compiled = query.compile(dialect=self.dialect)  # Oracle's SQL: named binds
        # Bind names the dialect had to quote (reserved words) are sent as it escaped them.
        escaped: Mapping[str, str] = getattr(compiled, "escaped_bind_names", None) or {}
        values = {escaped.get(k, k): v for k, v in compiled.construct_params(dict(params)).items()}
        frames = fetch(compiled.string, values, size=rows, requested_schema=schema)
        return _record_batches(frames, schema)


def _record_batches(frames: Iterator[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for frame in frames:
        # The driver's last frame can be empty; a DataFrame's num_rows is a method, and an
        # empty one does not convert (IndexError in its Arrow stream, oracledb 26.1).
        if not frame.num_rows():
            continue
        table = pa.table(frame)
        if table.schema != schema:  # names as the query spelled them; types as asked
            table = table.rename_columns(schema.names).cast(schema)
        yield from table.to_batches()
