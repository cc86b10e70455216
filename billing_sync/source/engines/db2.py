"""Db2 sources: Db2 for Linux, UNIX and Windows (``db2+ibm_db://``, ibm-db-sa) and Db2 for
IBM i (``ibmi://``, sqlalchemy-ibmi over ODBC). Compiled only: no Db2 server runs here.

Read-only: Db2 has no session switch that refuses writes, so the guard is the grants —
the capture user holds CONNECT and SELECT on the mapped tables and nothing else
(:meth:`Db2Adapter.grants`); a write then fails with SQL0551N (LUW) / SQL0551 (IBM i).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from billing_sync.source.engines.base import HASH_HEX_DIGITS, EngineAdapter, MissingDriver, lit

_DECIMAL_PREFIX = "decimal("
_HEX = "0123456789ABCDEF"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Db2Adapter(EngineAdapter):
    """Db2 for Linux, UNIX and Windows."""

    name = "db2"
    dialects: ClassVar[tuple[str, ...]] = ("db2", "ibm_db_sa")
    extra = "db2"
    tested_live = False
    horizon_grant = (
        "the capture user cannot run MON_GET_UNIT_OF_WORK"
        " (GRANT EXECUTE ON FUNCTION SYSPROC.MON_GET_UNIT_OF_WORK TO ...)"
    )
    row_values = False
    named_params = True  # compiled by the dialect into ibm_db's (and pyodbc's) qmark binds
    fetch_first = True
    text_type = "VARCHAR(32672)"  # the largest VARCHAR
    integer_division = "trunc"  # NUMBER / DECIMAL division keeps the fraction
    # SQL0952N / SQLSTATE 57014: processing was cancelled due to an interrupt (what the
    # query timeout raises); HYT00: the ODBC timeout-expired state (pyodbc, IBM i).
    timeout_markers = ("SQL0952", "57014", "HYT00")

    def set_read_only(self, connection: Connection) -> None:
        """Nothing to switch: the capture user's grants are SELECT only (module doc)."""

    def set_statement_timeout(self, connection: Connection, seconds: float) -> None:
        # SQL_ATTR_QUERY_TIMEOUT (whole seconds) set on the connection is the default of
        # every statement it prepares; past it the CLI driver cancels the statement on
        # the server (the QueryTimeout keyword's behaviour).
        # https://www.ibm.com/docs/en/db2/11.5.x?topic=keywords-querytimeout
        # why: the driver is an optional extra (billing-sync[db2]); only its sessions get here
        import ibm_db

        raw = connection.connection.driver_connection
        raw.set_option({ibm_db.SQL_ATTR_QUERY_TIMEOUT: max(1, round(seconds))})  # type: ignore[union-attr]

    def now_sql(self) -> str:
        # CURRENT TIMESTAMP special register, read from the one-row catalog table.
        # https://www.ibm.com/docs/en/db2/11.5.x?topic=registers-current-timestamp
        return "SELECT CURRENT TIMESTAMP FROM SYSIBM.SYSDUMMY1"

    def oldest_transaction_sql(self) -> str:
        # MON_GET_UNIT_OF_WORK(application_handle, member): NULL = all applications,
        # -2 = all members; UOW_START_TIME is the uow_start_time monitor element, the
        # start of the application's current unit of work. Needs EXECUTE on the routine
        # (or DATAACCESS, DBADM, SQLADM).
        # https://www.ibm.com/docs/en/db2/11.5?topic=mpf-mon-get-unit-work-table-function-get-unit-work-metrics
        return (
            "SELECT APPLICATION_HANDLE, UOW_START_TIME,"
            " TIMESTAMPDIFF(2, CHAR(CURRENT TIMESTAMP - UOW_START_TIME))"
            " FROM TABLE(MON_GET_UNIT_OF_WORK(NULL, -2))"
            " WHERE UOW_START_TIME IS NOT NULL"
            " AND APPLICATION_HANDLE <> MON_GET_APPLICATION_HANDLE()"
            " ORDER BY UOW_START_TIME FETCH FIRST 1 ROWS ONLY"
        )

    def horizon_visible(self, connection: Connection) -> str | None:
        try:
            connection.exec_driver_sql(
                "SELECT 1 FROM TABLE(MON_GET_UNIT_OF_WORK(NULL, -2)) FETCH FIRST 1 ROWS ONLY"
            ).all()
        except DBAPIError:  # SQL0551N: no EXECUTE privilege
            return self.horizon_grant
        return None

    def canonical_text(self, column: ColumnElement[Any], catalog_type: str) -> ColumnElement[Any]:
        text: ColumnElement[Any]
        if catalog_type == "text":
            trimmed = sa.func.rtrim(sa.func.varchar(column))
            text = self.escaped(sa.func.nullif(trimmed, sa.literal_column("''")))
        elif catalog_type == "date":
            days = sa.func.days(column) - sa.func.days(sa.literal_column("DATE('2000-01-01')"))
            text = sa.func.varchar(days)
        elif catalog_type == "timestamp":
            # DAYS, MIDNIGHT_SECONDS and MICROSECOND are exact; no TIMESTAMPDIFF estimate.
            day = sa.func.days(column) - sa.func.days(sa.literal_column("DATE('1970-01-01')"))
            micros = (
                sa.func.bigint(day) * lit(86_400_000_000)
                + sa.func.bigint(sa.func.midnight_seconds(column)) * lit(1_000_000)
                + sa.func.microsecond(column)
            )
            text = sa.func.varchar(micros)
        elif catalog_type in ("integer", "bigint"):
            text = sa.func.varchar(sa.func.bigint(column))
        elif catalog_type == "boolean":
            text = sa.case(
                (column != lit(0), sa.literal_column("'true'")),
                (column == lit(0), sa.literal_column("'false'")),
            )
        elif catalog_type.startswith(_DECIMAL_PREFIX):
            precision, scale = catalog_type[len(_DECIMAL_PREFIX) : -1].split(",")
            # VARCHAR_FORMAT cannot print DECIMAL on every release; DECIMAL(x, p, s)
            # as VARCHAR drops leading zeros on LUW 9.7+ (unverified on IBM i).
            text = sa.func.varchar(sa.func.decimal(column, lit(int(precision)), lit(int(scale))))
        else:
            raise ValueError(f"no canonical text for catalog type {catalog_type!r}")
        return sa.func.coalesce(text, self.null_text())

    def md5_hex(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        # HASH(expr, 0) is MD5, VARBINARY(16) (Db2 11.5); HEX gives 32 upper-case digits.
        # https://www.ibm.com/docs/en/db2/11.5?topic=functions-hash
        return sa.func.hex(sa.func.hash(text, lit(0)))

    def hex_to_int(self, digits: ColumnElement[Any]) -> ColumnElement[Any]:
        # Db2 has no hex-to-integer function: each of the 15 digits is valued with LOCATE
        # in '0..F' and weighted by its place. key_range_hash computes the MD5 once per
        # row in a derived table and applies this to its column.
        total: ColumnElement[Any] | None = None
        for place in range(HASH_HEX_DIGITS):
            char = sa.func.substr(digits, lit(place + 1), lit(1))
            value = sa.func.locate(char, sa.literal_column(f"'{_HEX}'")) - lit(1)
            term = sa.func.bigint(value) * lit(16 ** (HASH_HEX_DIGITS - 1 - place))
            total = term if total is None else total + term
        assert total is not None
        return total

    def grants(self, user: str, tables: Sequence[tuple[str | None, str]]) -> list[str]:
        statements = [f"GRANT CONNECT ON DATABASE TO USER {user}"]
        for schema, table in tables:
            name = f"{_quote(schema)}.{_quote(table)}" if schema else _quote(table)
            statements.append(f"GRANT SELECT ON {name} TO USER {user}")
        statements.append(f"GRANT EXECUTE ON FUNCTION SYSPROC.MON_GET_UNIT_OF_WORK TO USER {user}")
        return statements


class Db2ForIAdapter(Db2Adapter):
    """Db2 for IBM i (the AS/400 line ICOMS runs on)."""

    name = "db2-for-i"
    dialects: ClassVar[tuple[str, ...]] = ("ibmi",)
    extra = "ibmi"
    horizon_grant = (
        "the capture user sees only its own commitment definitions in"
        " QSYS2.DB_TRANSACTION_INFO (needs *JOBCTL special authority or the"
        " QIBM_DB_SQLADM / QIBM_DB_SYSMON function usage)"
    )

    def set_statement_timeout(self, connection: Connection, seconds: float) -> None:
        # pyodbc's Connection.timeout is SQL_ATTR_QUERY_TIMEOUT (seconds) for every
        # statement of the connection; the IBM i Access ODBC driver cancels the query.
        # https://github.com/mkleehammer/pyodbc/wiki/Connection#timeout
        raw = connection.connection.driver_connection
        raw.timeout = max(1, round(seconds))  # type: ignore[union-attr]

    def missing_driver(self, error: BaseException) -> MissingDriver:
        # sqlalchemy-ibmi talks ODBC: pyodbc needs unixODBC (libodbc.so.2) and IBM's
        # "IBM i Access Client Solutions" ODBC driver, which pip cannot install.
        base = super().missing_driver(error)
        return MissingDriver(f"{base}; it also needs unixODBC and the IBM i Access ODBC driver")

    def oldest_transaction_sql(self) -> str:
        # IBM i has no MON_GET_UNIT_OF_WORK. QSYS2.DB_TRANSACTION_INFO returns one row per
        # commitment definition (what WRKCMTDFN shows); JOB_NAME is the qualified job,
        # LOCAL_CHANGES_PENDING = 'YES' marks an uncommitted transaction with changes, and
        # STATE_TIMESTAMP is when the definition entered its current state, which for one
        # with pending changes is the start of its pending work (IBM's own "pending
        # database transactions" example orders by it). Like Oracle's V$TRANSACTION it
        # lists transactions that have written, not those that have only read so far.
        # Authorization: none for the caller's own definitions; *JOBCTL or the
        # QIBM_DB_SQLADM / QIBM_DB_SYSMON function usage to see other jobs'.
        # https://www.ibm.com/docs/en/i/7.4?topic=services-db-transaction-info-view
        return (
            "SELECT JOB_NAME, STATE_TIMESTAMP,"
            " TIMESTAMPDIFF(2, CHAR(CURRENT TIMESTAMP - STATE_TIMESTAMP))"
            " FROM QSYS2.DB_TRANSACTION_INFO"
            " WHERE LOCAL_CHANGES_PENDING = 'YES' AND JOB_NAME <> QSYS2.JOB_NAME"
            " ORDER BY STATE_TIMESTAMP FETCH FIRST 1 ROWS ONLY"
        )

    def horizon_visible(self, connection: Connection) -> str | None:
        """Without the authority the view does not fail, it shows only the caller's own
        commitment definitions: that cannot be told from "no other transaction", so the
        authority is printed by :meth:`grants` and checked by the operator."""
        return None

    def md5_hex(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        # HASH_MD5 returns BINARY(16) (IBM i 7.3 TR and later; not verified on a server).
        return sa.func.hex(sa.func.hash_md5(text))

    def grants(self, user: str, tables: Sequence[tuple[str | None, str]]) -> list[str]:
        statements = []
        for schema, table in tables:
            name = f"{_quote(schema)}.{_quote(table)}" if schema else _quote(table)
            statements.append(f"GRANT SELECT ON {name} TO {user}")
        # The horizon probe: see other jobs' commitment definitions (CL, not SQL).
        statements.append(f"CHGFCNUSG FCNID(QIBM_DB_SYSMON) USER({user.upper()}) USAGE(*ALLOWED)")
        return statements
