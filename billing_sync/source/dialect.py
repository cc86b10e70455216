"""What differs between source databases: the clock, the oldest open transaction, SQL style.

Each dialect gives the SQL text that reads the source's own clock and, where the
database shows it, the start of its oldest open transaction (DESIGN §4). Where that is
not visible (a standby, missing privileges) ``oldest_transaction_sql`` is ``None`` and
the fixed delay alone bounds the window. Only PostgreSQL runs here; the Oracle and DB2
texts are unit-tested and wait for their drivers.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing_sync.sql import POSTGRES_STYLE, QueryStyle

CAPTURE_APPLICATION_NAME = "billing-sync-capture"


@dataclass(frozen=True)
class SourceDialect:
    name: str
    now_sql: str
    oldest_transaction_sql: str | None
    style: QueryStyle = POSTGRES_STYLE


POSTGRES = SourceDialect(
    name="postgresql",
    # clock_timestamp(): now() would be this statement's transaction start.
    now_sql="SELECT clock_timestamp()::timestamp(6)",
    # Every open client transaction counts, also one that has only read so far: it may
    # still write rows stamped with its start. Our own capture sessions are read-only.
    # Needs pg_monitor (or superuser) to see other users' sessions.
    oldest_transaction_sql=(
        "SELECT pid, xact_start::timestamp(6) FROM pg_stat_activity"
        " WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        " AND datname = current_database() AND backend_type = 'client backend'"
        f" AND application_name <> '{CAPTURE_APPLICATION_NAME}'"
        " ORDER BY xact_start LIMIT 1"
    ),
)

ORACLE = SourceDialect(
    name="oracle",
    now_sql="SELECT LOCALTIMESTAMP FROM dual",
    # v$transaction lists transactions that have started writing (a read-only one has
    # no entry): Oracle's write-stamped rows carry the application's timestamp, so the
    # delay must cover reads before the first write. Needs SELECT on v$transaction.
    oldest_transaction_sql=(
        "SELECT s.sid, CAST(t.start_date AS TIMESTAMP) FROM v$transaction t"
        " JOIN v$session s ON s.taddr = t.addr"
        " ORDER BY t.start_date FETCH FIRST 1 ROWS ONLY"
    ),
    style=QueryStyle(row_values=False, named_params=True, fetch_first=True),
)

DB2 = SourceDialect(
    name="db2",
    now_sql="SELECT CURRENT TIMESTAMP FROM SYSIBM.SYSDUMMY1",
    oldest_transaction_sql=(
        "SELECT APPLICATION_HANDLE, UOW_START_TIME"
        " FROM TABLE(MON_GET_UNIT_OF_WORK(NULL, -2))"
        " WHERE UOW_START_TIME IS NOT NULL AND APPLICATION_HANDLE <> MON_GET_APPLICATION_HANDLE()"
        " ORDER BY UOW_START_TIME FETCH FIRST 1 ROWS ONLY"
    ),
    style=QueryStyle(row_values=False, named_params=True, fetch_first=True),
)

DIALECTS = {dialect.name: dialect for dialect in (POSTGRES, ORACLE, DB2)}
