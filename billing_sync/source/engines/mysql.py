"""MySQL and MariaDB sources (tested live against MariaDB 10.11).

Read-only: ``SET SESSION TRANSACTION READ ONLY`` on every pooled connection, and
autocommit so that each statement sees the newest committed rows (a REPEATABLE READ
snapshot held across batches would hide them). A write fails with error 1792
("Cannot execute statement in a READ ONLY transaction").

Row-value comparisons: MariaDB's optimizer does not range-scan an index for
``(chg_ts, id) > (x, y)`` (EXPLAIN shows ``type ALL`` and a filesort on a 20,000-row
table; with the expanded form it is ``range`` on the cursor index with both key parts),
so queries for this engine use the expanded ``OR`` form.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from billing_sync.source.engines.base import (
    HASH_HEX_DIGITS,
    EngineAdapter,
    OldestTransaction,
    ReadOnlyRefused,
    lit,
)

log = logging.getLogger(__name__)

_DECIMAL_PREFIX = "decimal("
_BUFFER_IDLE_SECONDS = 0.12  # INNODB_TRX's buffer refreshes after 0.1 s unread
_PROBE_ATTEMPTS = 5
STALE_SNAPSHOT = "(INNODB_TRX stale: held at the last fresh snapshot)"
"""The holder named when the horizon is kept at the last fresh snapshot's bound."""


class HorizonStale(RuntimeError):
    """No fresh ``INNODB_TRX`` snapshot could be had (see ``oldest_open_transaction``)."""


_ACCESS_DENIED = (1227, 1142, 1044)  # need PROCESS / SELECT denied / no database access


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MySQLAdapter(EngineAdapter):
    name = "mysql"
    dialects: ClassVar[tuple[str, ...]] = ("mysql", "mariadb")
    extra = "mysql"
    tested_live = True
    horizon_grant = "the capture user lacks the PROCESS privilege (GRANT PROCESS ON *.* TO ...)"
    row_values = False
    text_type = "char"  # CAST(... AS CHAR): MySQL and MariaDB have no CAST AS TEXT
    integer_type = "SIGNED"  # https://mariadb.com/kb/en/cast/ (no CAST AS BIGINT)
    integer_division = "div"  # "/" is exact decimal division
    min_delay_seconds = 1.1  # whole-second TRX_STARTED plus the buffer's 0.1 s

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._probed_at = float("-inf")  # when this adapter last read INNODB_TRX
        self._fresh_bound: datetime | None = None  # horizon bound of the last fresh probe
        self._fresh_at = float("-inf")  # when the last fresh probe began
        self._fresh_oldest: OldestTransaction | None = None  # and what it found

    def engine_options(self) -> dict[str, Any]:
        return {"pool_pre_ping": True, "isolation_level": "AUTOCOMMIT"}

    @property
    def engine(self) -> Engine:
        fresh = self._engine is None
        engine = super().engine
        if fresh:
            # Every pooled DB-API connection, also one the pool re-opens, is read-only.
            # MariaDB: SET TRANSACTION READ ONLY
            # https://mariadb.com/kb/en/set-transaction/#access-mode
            @event.listens_for(engine, "connect")
            def _read_only(dbapi_connection: Any, _record: Any) -> None:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute("SET SESSION TRANSACTION READ ONLY")
                    # UTC sessions: a named zone needs the server's time zone tables,
                    # which many installations (Debian's MariaDB) do not load, so the
                    # clock and transaction starts are converted here (local_time).
                    # DATETIME columns read as stored; TIMESTAMP columns read in UTC.
                    cursor.execute("SET time_zone = '+00:00'")

        return engine

    def set_read_only(self, connection: Connection) -> None:
        # MariaDB names the variable tx_read_only; MySQL 8 transaction_read_only.
        for variable in ("@@session.tx_read_only", "@@session.transaction_read_only"):
            try:
                value = connection.exec_driver_sql(f"SELECT {variable}").scalar_one()
            except DBAPIError:
                continue
            if int(value) == 1:
                return
            break
        raise ReadOnlyRefused(f"{self.config.masked()}: the session did not become read-only")

    def local_time(self, value: datetime) -> datetime:
        if self.timezone is None:
            return value
        utc = value.replace(tzinfo=UTC)
        return utc.astimezone(ZoneInfo(self.timezone)).replace(tzinfo=None)

    def now_sql(self) -> str:
        # NOW(6) is the statement's start, with microseconds (the source clock).
        return "SELECT NOW(6)"

    def oldest_transaction_sql(self) -> str:
        # information_schema.INNODB_TRX lists every transaction executing inside InnoDB;
        # TRX_STARTED is its start and TRX_MYSQL_THREAD_ID the PROCESSLIST id. Reading
        # it needs the PROCESS privilege.
        # https://mariadb.com/kb/en/information-schema-innodb_trx-table/
        # https://dev.mysql.com/doc/refman/8.4/en/information-schema-innodb-trx-table.html
        # Measured on MariaDB 10.11: a writer appears from its first write or locking
        # read (a read-only transaction, TRX_IS_READ_ONLY = 1, from its first read), and
        # TRX_STARTED has whole-second resolution (floored). So the horizon covers rows
        # stamped by the writing statements (their NOW() is at or after that second); a
        # stamp the application took earlier in the transaction is the fixed delay's.
        # A transaction declared READ ONLY cannot write (error 1792), so it holds
        # nothing back: other capture sessions' reads are not horizon holders.
        # Own row first: the probe's proof of freshness (see oldest_open_transaction).
        return (
            "SELECT trx_mysql_thread_id, trx_started,"
            " TIMESTAMPDIFF(MICROSECOND, trx_started, NOW(6)) / 1000000,"
            " trx_mysql_thread_id = CONNECTION_ID() AND LOCATE(%(nonce)s, trx_query) > 0"
            " FROM information_schema.INNODB_TRX"
            " WHERE trx_mysql_thread_id = CONNECTION_ID() OR trx_is_read_only = 0"
            " ORDER BY trx_mysql_thread_id = CONNECTION_ID() DESC, trx_started LIMIT 2"
        )

    def oldest_open_transaction(self, connection: Connection) -> OldestTransaction | None:
        """The oldest open writer of another session, from an ``INNODB_TRX`` snapshot
        proven fresh; when none can be had, the bound of the last fresh one.

        InnoDB serves the view from a buffer it refreshes only when it was not read for
        0.1 s ("refreshed only if more than 0.1 seconds has elapsed since the last time
        the buffer was read",
        https://dev.mysql.com/doc/refman/8.4/en/innodb-information-schema-internal-data.html;
        MariaDB's trx0i_s.cc: CACHE_MIN_IDLE_TIME_NS, last_read set by every read). So
        any session reading it more often than every 0.1 s (capture probes back to back,
        a monitor) pins an old snapshot indefinitely: measured, a writer that opened
        after the snapshot stayed invisible for as long as a 30 ms poller ran, and the
        horizon then passed its stamps (tests/faults: test_mariadb_horizon). The probe
        therefore runs in its own read-only transaction and names itself: the snapshot
        is fresh only when it lists that transaction running this very statement (its
        ``TRX_QUERY`` holds the probe's nonce), i.e. it was filled after the probe
        began. Otherwise it waits out the 0.1 s and tries again; after that it keeps the
        horizon at the last fresh snapshot's bound (every transaction open now either
        was listed then or started after it), and with none at all it fails the probe.
        """
        if not self._horizon_checked:
            self._horizon_checked = True
            reason = self.horizon_visible(connection)
            if reason is not None:
                self._warn_once(reason)
        if self.horizon_unavailable is not None:
            return None
        if time.monotonic() - self._fresh_at < _BUFFER_IDLE_SECONDS:
            # A probe now would only meet the buffer the last one filled. Its answer is
            # still sound: a transaction it could not list began after it, less than
            # 0.12 s ago, so above source_now - delay for any delay the engine accepts
            # (min_delay_seconds); probing once per table would cost 0.1 s each.
            return self._fresh_oldest
        attempts = _PROBE_ATTEMPTS if self._fresh_bound is not None else 4 * _PROBE_ATTEMPTS
        for _ in range(attempts):
            time.sleep(max(0.0, _BUFFER_IDLE_SECONDS - (time.monotonic() - self._probed_at)))
            began = time.monotonic()
            fresh = self._probe(connection)
            self._probed_at = time.monotonic()
            if fresh is not None:
                mine, oldest = fresh
                self._fresh_bound = mine if oldest is None else min(mine, oldest.started_at)
                self._fresh_at, self._fresh_oldest = began, oldest
                return oldest
        if self._fresh_bound is None:
            raise HorizonStale(
                f"{self.config.masked()}: information_schema.INNODB_TRX stayed stale for"
                f" {attempts} probes (another session reads it more often than every 0.1 s),"
                " so open transactions cannot be seen; capture waits for a fresh snapshot"
            )
        log.warning(
            "%s: INNODB_TRX is being read more often than every 0.1 s by another session"
            " and shows a stale snapshot; the horizon stays at %s",
            self.config.masked(),
            self._fresh_bound,
        )
        return OldestTransaction(id=STALE_SNAPSHOT, started_at=self._fresh_bound, age_seconds=0.0)

    def _probe(self, connection: Connection) -> tuple[datetime, OldestTransaction | None] | None:
        """``(start of this probe's transaction, oldest other writer)`` from a fresh
        snapshot, or ``None`` when the snapshot predates this probe."""
        nonce = f"bs-probe-{secrets.token_hex(8)}"
        # WITH CONSISTENT SNAPSHOT starts the InnoDB transaction at once, so it is listed.
        connection.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            rows = connection.exec_driver_sql(self.oldest_transaction_sql(), {"nonce": nonce})
            own, *others = rows.all()
        except ValueError:  # no row at all: not even this probe's transaction is listed
            return None
        finally:
            connection.exec_driver_sql("COMMIT")
        if not own[3]:
            return None
        oldest = None
        if others:
            (thread, started, age, _) = others[0]
            oldest = OldestTransaction(
                id=str(thread), started_at=self.local_time(started), age_seconds=float(age)
            )
        return self.local_time(own[1]), oldest

    def horizon_visible(self, connection: Connection) -> str | None:
        try:
            # count(*): with LIMIT 0 the server answers without reading (or checking) it.
            connection.exec_driver_sql("SELECT count(*) FROM information_schema.INNODB_TRX").all()
        except DBAPIError as error:
            code = error.orig.args[0] if error.orig is not None and error.orig.args else None
            if code in _ACCESS_DENIED:
                return self.horizon_grant
            raise
        return None

    # -- row hash ------------------------------------------------------------------------

    def canonical_text(self, column: ColumnElement[Any], catalog_type: str) -> ColumnElement[Any]:
        text: ColumnElement[Any]
        if catalog_type == "text":
            # Empty by length, not by = '': under a PAD SPACE or _ci collation other
            # strings compare equal to ''.
            trimmed = sa.func.rtrim(sa.cast(column, sa.String))
            empty = sa.case((sa.func.char_length(trimmed) == lit(0), sa.null()), else_=trimmed)
            # REPLACE: https://mariadb.com/kb/en/replace-function/
            text = self.escaped(empty)
        elif catalog_type == "date":
            days = sa.func.datediff(column, sa.literal_column("DATE '2000-01-01'"))
            text = sa.cast(days, sa.String)
        elif catalog_type == "timestamp":
            micros = sa.func.timestampdiff(
                sa.literal_column("MICROSECOND"),
                sa.literal_column("TIMESTAMP '1970-01-01 00:00:00'"),
                column,
            )
            text = sa.cast(micros, sa.String)
        elif catalog_type in ("integer", "bigint"):
            text = sa.cast(sa.cast(column, sa.BigInteger), sa.String)
        elif catalog_type == "boolean":
            text = sa.case(
                (column != lit(0), sa.literal_column("'true'")),
                (column == lit(0), sa.literal_column("'false'")),
            )
        elif catalog_type.startswith(_DECIMAL_PREFIX):
            precision, scale = catalog_type[len(_DECIMAL_PREFIX) : -1].split(",")
            value = sa.cast(column, sa.Numeric(int(precision), int(scale)))
            text = sa.cast(value, sa.String)
        else:
            raise ValueError(f"no canonical text for catalog type {catalog_type!r}")
        return sa.func.coalesce(text, self.null_text())

    def text_literal(self, value: str) -> ColumnElement[Any]:
        # A backslash escapes in MariaDB string literals (unless NO_BACKSLASH_ESCAPES).
        # https://mariadb.com/kb/en/string-literals/
        return super().text_literal(value.replace("\\", "\\\\"))

    def md5_hex(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        # MD5(str) returns 32 lower-case hex digits (https://mariadb.com/kb/en/md5/) of
        # the string's bytes in its own character set: converted to utf8mb4 first, so a
        # latin1 column hashes like the same text in the warehouse (UTF-8).
        return sa.func.md5(sa.cast(text, mysql.CHAR(charset="utf8mb4")))

    def hex_to_int(self, digits: ColumnElement[Any]) -> ColumnElement[Any]:
        # CONV(n, 16, 10) reads hex digits as a number. https://mariadb.com/kb/en/conv/
        head = sa.func.substring(digits, lit(1), lit(HASH_HEX_DIGITS))
        return sa.cast(sa.func.conv(head, lit(16), lit(10)), sa.BigInteger)

    # -- footprint, grants, reads ----------------------------------------------------------

    def explain_uses_index(self, connection: Connection, query: sa.Select[Any], index: str) -> bool:
        compiled = query.compile(dialect=connection.dialect)
        rows = connection.exec_driver_sql("EXPLAIN " + compiled.string, compiled.params).mappings()
        # range/ref: the scan starts at the watermark. "index" is a full index scan from
        # its first entry (what a row-value comparison gets), so it does not count.
        return any(
            row["key"] == index and row["type"] in ("range", "ref", "eq_ref") for row in rows
        )

    def grants(self, user: str, tables: Sequence[tuple[str | None, str]]) -> list[str]:
        database = self.config.database
        statements = []
        for schema, table in tables:
            owner = schema or database
            name = f"{_quote(owner)}.{_quote(table)}" if owner else _quote(table)
            statements.append(f"GRANT SELECT ON {name} TO {user}")
        statements.append(f"GRANT PROCESS ON *.* TO {user}")  # the horizon probe
        return statements

    # read_arrow: the generic cursor path. Measured on this machine (200,000 rows of five
    # columns, load average 13): PyMySQL rows into Arrow 5.1-7.3 s, ConnectorX 0.30-0.34 s.
    # ConnectorX opens its own connection, outside the read-only session set up above,
    # so it is left for the wiring phase to adopt with that guard decided.
