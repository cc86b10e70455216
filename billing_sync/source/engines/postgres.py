"""PostgreSQL sources (tested live; the capture path keeps psycopg and binary COPY)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from billing_sync.source.engines.base import (
    HASH_HEX_DIGITS,
    EngineAdapter,
    ReadOnlyRefused,
    lit,
)

CAPTURE_APPLICATION_NAME = "billing-sync-capture"

# clock_timestamp(): now() would be this statement's transaction start.
NOW_SQL = "SELECT clock_timestamp()::timestamp(6)"

# pg_stat_activity.xact_start: when the session's current transaction started (null if
# none). Every open client transaction counts, also one that has only read so far: it
# may still write rows stamped with its start. Our own capture sessions are read-only
# and named. Other users' rows need pg_monitor (pg_read_all_stats).
# https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
OLDEST_TRANSACTION_SQL = (
    "SELECT pid, xact_start::timestamp(6),"
    " extract(epoch FROM clock_timestamp() - xact_start)"
    " FROM pg_stat_activity"
    " WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
    " AND datname = current_database() AND backend_type = 'client backend'"
    f" AND application_name <> '{CAPTURE_APPLICATION_NAME}'"
    " ORDER BY xact_start LIMIT 1"
)

# Whether the session can see the primary's transactions: not on a standby
# (pg_is_in_recovery), and only as superuser or a member of pg_monitor.
# https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-INFO-TABLE
HORIZON_VISIBLE_SQL = (
    "SELECT pg_is_in_recovery(),"
    " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    " OR pg_has_role(current_user, 'pg_monitor', 'USAGE')"
)
_DECIMAL_PREFIX = "decimal("


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresAdapter(EngineAdapter):
    name = "postgresql"
    dialects: ClassVar[tuple[str, ...]] = ("postgresql",)
    extra = None  # psycopg is a core dependency
    tested_live = True
    horizon_grant = "the capture user lacks the pg_monitor role (GRANT pg_monitor TO ...)"
    row_values = True

    def engine_options(self) -> dict[str, Any]:
        # default_transaction_read_only: every transaction of the session is read-only.
        # https://www.postgresql.org/docs/current/runtime-config-client.html
        zone = f" -c TimeZone={self.timezone}" if self.timezone else ""
        return {
            "pool_pre_ping": True,
            "isolation_level": "AUTOCOMMIT",
            "connect_args": {
                "options": f"-c default_transaction_read_only=on{zone}",
                "application_name": CAPTURE_APPLICATION_NAME,
            },
        }

    def set_read_only(self, connection: Connection) -> None:
        value = connection.exec_driver_sql("SHOW default_transaction_read_only").scalar_one()
        if value != "on":
            raise ReadOnlyRefused(f"{self.config.masked()}: the session did not become read-only")

    def now_sql(self) -> str:
        return NOW_SQL

    def oldest_transaction_sql(self) -> str:
        return OLDEST_TRANSACTION_SQL

    def horizon_visible(self, connection: Connection) -> str | None:
        row = connection.exec_driver_sql(HORIZON_VISIBLE_SQL).one()
        if row[0]:
            return "the source is a standby; it cannot see the primary's transactions"
        if not row[1]:
            return self.horizon_grant
        return None

    def canonical_text(self, column: ColumnElement[Any], catalog_type: str) -> ColumnElement[Any]:
        """The same texts as :func:`billing_sync.reconcile.hashing.canonical_text` for
        finite values, with empty text as ``\\N`` (the cross-engine contract)."""
        text: ColumnElement[Any]
        if catalog_type == "text":
            trimmed = sa.func.rtrim(sa.cast(column, sa.Text))
            text = self.escaped(sa.func.nullif(trimmed, sa.literal_column("''")))
        elif catalog_type == "date":
            days = sa.cast(column, sa.Date) - sa.literal_column("DATE '2000-01-01'")
            text = sa.cast(days, sa.Text)
        elif catalog_type == "timestamp":
            epoch = sa.extract("epoch", sa.cast(column, postgresql.TIMESTAMP(precision=6)))
            text = sa.cast(sa.cast(epoch * 1000000, sa.BigInteger), sa.Text)
        elif catalog_type in ("integer", "bigint"):
            text = sa.cast(sa.cast(column, sa.BigInteger), sa.Text)
        elif catalog_type == "boolean":
            text = sa.cast(sa.cast(column, sa.Boolean), sa.Text)
        elif catalog_type.startswith(_DECIMAL_PREFIX):
            precision, scale = catalog_type[len(_DECIMAL_PREFIX) : -1].split(",")
            value = sa.cast(column, sa.Numeric(int(precision), int(scale)))
            text = sa.cast(value, sa.Text)
        else:
            raise ValueError(f"no canonical text for catalog type {catalog_type!r}")
        return sa.func.coalesce(text, self.null_text())

    def md5_hex(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        # md5(text) returns 32 lower-case hex digits.
        # https://www.postgresql.org/docs/current/functions-string.html
        return sa.func.md5(text)

    def hex_to_int(self, digits: ColumnElement[Any]) -> ColumnElement[Any]:
        # 'x' || 15 hex digits is a bit-string literal of 60 bits; bit(n) casts to bigint.
        head = sa.func.substr(digits, lit(1), lit(HASH_HEX_DIGITS))
        bits = sa.cast(sa.literal_column("'x'").concat(head), postgresql.BIT(HASH_HEX_DIGITS * 4))
        return sa.cast(bits, sa.BigInteger)

    def explain_uses_index(self, connection: Connection, query: sa.Select[Any], index: str) -> bool:
        compiled = query.compile(dialect=connection.dialect)
        plan = connection.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + compiled.string, compiled.params
        ).scalar_one()
        return f'"Index Name": "{index}"' in str(plan).replace("'", '"')

    def grants(self, user: str, tables: Sequence[tuple[str | None, str]]) -> list[str]:
        statements = []
        for used in sorted({schema or "public" for schema, _ in tables}):
            statements.append(f"GRANT USAGE ON SCHEMA {_quote(used)} TO {user}")
        for schema, table in tables:
            statements.append(
                f"GRANT SELECT ON {_quote(schema or 'public')}.{_quote(table)} TO {user}"
            )
        statements.append(f"ALTER ROLE {user} SET default_transaction_read_only = on")
        statements.append(f"GRANT pg_monitor TO {user}")  # the horizon probe
        return statements
