"""Benchmark data: the snapshot table, generated in the source by SQL, and URL helpers.

The snapshot scenario reads the simulated ICOMS biller's ``PAYMENT`` table (16 columns:
CYYMMDD/HHMMSS integer dates and audit stamps, a card number the catalog protects, a CVV
it never reads; primary key ``(SITE_ID, PAYMENT_NO)``, the capture index), filled by one
``INSERT ... SELECT generate_series`` so that a million rows take seconds, not the
minutes the account-by-account seeder would. It is deterministic for a row count.
Some ``CHG_USER`` values are the empty string and others NULL, so that every
contender's output can be checked for keeping them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from billing_sync.simulator.icoms.schema import TABLES, create_schema
from billing_sync.simulator.tables import drop_secondary_indexes

SCHEMA = "icoms"
TABLE = "PAYMENT"
EMPTY_EVERY = 97
"""Every 97th row has ``CHG_USER = ''``."""
NULL_EVERY = 89
"""Every 89th row (not also a 97th) has ``CHG_USER`` NULL."""
ROWS_PER_ACCOUNT = 8
"""The payments' accounts exist in ``ACCOUNT`` (the payment suite checks the parent)."""


@dataclass(frozen=True)
class SnapshotTable:
    """What the generated table holds, for checking each contender's output."""

    rows: int
    empty_strings: int
    nulls: int


def expected_counts(rows: int) -> SnapshotTable:
    """Rows, empty ``CHG_USER`` and NULL ``CHG_USER`` of a table of ``rows`` rows.

    >>> expected_counts(1000)
    SnapshotTable(rows=1000, empty_strings=10, nulls=11)
    """
    empty = rows // EMPTY_EVERY
    both = rows // (EMPTY_EVERY * NULL_EVERY)
    return SnapshotTable(rows, empty, rows // NULL_EVERY - both)


# The ICOMS tables since the simulator's CYYMMDD/HHMMSS audit columns (local time), with
# named columns: PAY_DATE and the audit stamps are integers, CARD_NO a legacy card number
# (protected by the catalog; cards on one payment in four), CVV never read.
_ACCOUNTS = """
INSERT INTO {table} ("SITE_ID", "ACCOUNT_NO", "ACCT_NAME", "ACCT_TYPE", "SSN", "DOB",
    "ACCT_STATUS", "BILL_CYCLE", "AR_BALANCE", "CREDIT_CLASS", "OPEN_DATE",
    "CRT_DATE", "CRT_TIME", "CHG_DATE", "CHG_TIME", "CHG_USER", "REC_STATUS")
SELECT lpad(site::text, 3, '0'), lpad(n::text, 8, '0'),
       CASE WHEN n %% 101 = 0 THEN '' WHEN n %% 103 = 0 THEN NULL ELSE 'Account ' || n END,
       'R', NULL, 0, 'A', 1 + (n %% 28)::int, 0, 'A', 1230601,
       1230601, 120000, 1230601, 120000, 'CONVERT', 'A'
FROM generate_series(1, 5) AS site, generate_series(1, %(accounts)s) AS n
"""

_FILL = """
INSERT INTO {table} ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE", "AMOUNT",
    "PAY_METHOD", "PAY_STATUS", "CARD_NO", "CARD_EXP", "CVV",
    "CRT_DATE", "CRT_TIME", "CHG_DATE", "CHG_TIME", "CHG_USER", "REC_STATUS")
SELECT lpad((1 + g %% 5)::text, 3, '0'),
       g,
       lpad((1 + (g / 5) %% %(accounts)s)::text, 8, '0'),
       1240101 + (g %% 12) * 100 + (g %% 28),
       round(((g * 37) %% 20000 + 100) / 100.0, 2),
       m.method,
       CASE WHEN g %% 50 = 0 THEN 'R' ELSE 'P' END,
       CASE WHEN m.method = 'CC' THEN '4111' || lpad(((g / 5) %% %(accounts)s)::text, 12, '0')
       END,
       CASE WHEN m.method = 'CC' THEN '1229' END,
       CASE WHEN m.method = 'CC' THEN '123' END,
       c.d, c.t,
       CASE WHEN g %% 3 = 0 THEN c.d ELSE u.d END,
       CASE WHEN g %% 3 = 0 THEN c.t ELSE u.t END,
       CASE WHEN g %% {empty} = 0 THEN '' WHEN g %% {null} = 0 THEN NULL
            ELSE 'USER' || (g %% 40)::text END,
       CASE WHEN g %% 200 = 0 THEN 'D' ELSE 'A' END
FROM generate_series(1::bigint, %(rows)s::bigint) AS g,
     LATERAL (SELECT (ARRAY['CA', 'CK', 'CC', 'AC'])[1 + (g %% 4)::int] AS method) AS m,
     LATERAL (SELECT timestamp '2024-01-01' + g * interval '20 millisecond' AS ts) AS t,
     LATERAL (SELECT t.ts + (g %% 5) * interval '1 hour' AS ts) AS changed,
     LATERAL (SELECT (to_char(t.ts, 'YYYYMMDD')::int - 19000000) AS d,
                     to_char(t.ts, 'HH24MISS')::int AS t) AS c,
     LATERAL (SELECT (to_char(changed.ts, 'YYYYMMDD')::int - 19000000) AS d,
                     to_char(changed.ts, 'HH24MISS')::int AS t) AS u
"""


def ensure_snapshot_table(url: str, rows: int) -> SnapshotTable:
    """Create the biller's tables in ``url`` and fill ``PAYMENT`` with ``rows`` rows.

    ``ACCOUNT`` gets the payments' accounts (one per 8 payments), the other tables stay
    empty. Reuses the tables when ``PAYMENT`` already holds exactly ``rows`` rows (a re-run
    of the benchmark).
    """

    qualified = sql.Identifier(SCHEMA, TABLE)
    with psycopg.connect(url, autocommit=True) as conn:
        create_schema(conn, schema=SCHEMA)
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified)).fetchone()
        if found is None or found[0] != rows:
            with conn.transaction():
                for other in TABLES:
                    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(SCHEMA, other)))
                drop_secondary_indexes(conn, {TABLE: TABLES[TABLE]}, schema=SCHEMA)
                accounts = max(rows // (5 * ROWS_PER_ACCOUNT), 1)
                conn.execute(
                    sql.SQL(_ACCOUNTS).format(table=sql.Identifier(SCHEMA, "ACCOUNT")),
                    {"accounts": accounts},
                )
                conn.execute(
                    sql.SQL(_FILL).format(
                        table=qualified,
                        empty=sql.Literal(EMPTY_EVERY),
                        null=sql.Literal(NULL_EVERY),
                    ),
                    {"rows": rows, "accounts": accounts},
                )
                create_schema(conn, schema=SCHEMA)
            for name in ("ACCOUNT", TABLE):
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(SCHEMA, name)))
    return expected_counts(rows)


def source_tables() -> Any:
    """The ICOMS table definitions (the floors copy the table as it is)."""

    return TABLES


def socket_netloc_url(url: str) -> str:
    """``url`` with a ``?host=/socket/dir`` moved into the netloc, percent-encoded.

    libpq reads the socket folder from the query string, but ConnectorX and Sling parse
    the URL themselves and want it as the host.

    >>> socket_netloc_url("postgresql://postgres:@/db?host=/tmp/pg")
    'postgresql://postgres@%2Ftmp%2Fpg/db'
    >>> socket_netloc_url("postgresql://u:p@localhost:5432/db")
    'postgresql://u:p@localhost:5432/db'
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    hosts = query.pop("host", None)
    if not hosts or not hosts[0].startswith("/"):
        return url
    user = parts.username or ""
    password = f":{parts.password}" if parts.password else ""
    netloc = f"{user}{password}@{quote(hosts[0], safe='')}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, doseq=True)))


def native_mysql_url(url: str) -> str:
    """A SQLAlchemy MySQL/MariaDB URL without its driver, as ConnectorX and Sling take it.

    >>> native_mysql_url("mysql+pymysql://root@127.0.0.1:3306/db")
    'mysql://root@127.0.0.1:3306/db'
    """
    return make_url(url).set(drivername="mysql").render_as_string(hide_password=False)


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def scalar(url: str, text: str, params: Any = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(text, params).fetchone()
    return None if row is None else row[0]
