"""What differs between source databases: the clock and the oldest open transaction.

Each dialect gives the SQL text that reads the source's own clock and, where the
database shows it, the start of its oldest open transaction (DESIGN §4). Where that is
not visible (a standby, missing privileges) ``oldest_transaction_sql`` is ``None`` and
the fixed delay alone bounds the window.
"""

from __future__ import annotations

from dataclasses import dataclass

CAPTURE_APPLICATION_NAME = "billing-sync-capture"


@dataclass(frozen=True)
class SourceDialect:
    name: str
    now_sql: str
    oldest_transaction_sql: str | None


POSTGRES = SourceDialect(
    name="postgresql",
    # clock_timestamp(): now() would be this statement's transaction start.
    now_sql="SELECT clock_timestamp()::timestamp(6)",
    # Every open client transaction counts, also one that has only read so far: it may
    # still write rows stamped with its start. Our own capture sessions are read-only.
    oldest_transaction_sql=(
        "SELECT pid, xact_start::timestamp(6) FROM pg_stat_activity"
        " WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        " AND datname = current_database() AND backend_type = 'client backend'"
        f" AND application_name <> '{CAPTURE_APPLICATION_NAME}'"
        " ORDER BY xact_start LIMIT 1"
    ),
)

DIALECTS = {dialect.name: dialect for dialect in (POSTGRES,)}
