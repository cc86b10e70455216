"""Bad rows a real biller produces now and then, for the workload to inject (off by default).

Each kind writes one row, in one short transaction, stamped like every other write:

``negative_payment``  a payment with a negative amount (reversals should use status R)
``orphan_payment``    a payment for an account number not opened yet (opened later by the
                      workload's ``open_account``, which releases the payment from quarantine)
``invalid_date``      a statement whose due date is the 9999-12-31 sentinel
``bad_encoding``      an account name mangled by a wrong code page (UTF-8 read as Latin-1,
                      or a replacement character)
"""

from __future__ import annotations

from psycopg import sql

BAD_KINDS: tuple[str, ...] = ("negative_payment", "orphan_payment", "invalid_date", "bad_encoding")

#: Which table each kind writes.
BAD_TABLES: dict[str, str] = {
    "negative_payment": "PAYMENT",
    "orphan_payment": "PAYMENT",
    "invalid_date": "STATEMENT",
    "bad_encoding": "ACCOUNT",
}

#: Names as a wrong code page leaves them.
MANGLED_NAMES: tuple[str, ...] = (
    "MÃ¼ller Anna",
    "JosÃ© GarcÃ­a",
    "Fran\ufffdois Dubois",
    "\u00c3\u02dcystein Ek",  # \u00d8ystein, UTF-8 read as cp1252
)

_PAYMENT = """
INSERT INTO {s}."PAYMENT" ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE", "AMOUNT",
    "PAY_METHOD", "PAY_STATUS", "CRT_TS", "CHG_TS", "CHG_USER", "REC_STATUS")
VALUES (%(site)s, %(payment_no)s, %(account)s, CURRENT_DATE, %(amount)s::numeric, 'CA', 'P',
        localtimestamp, localtimestamp, %(user)s, 'A')
RETURNING 1"""

_TEMPLATES: dict[str, str] = {
    "negative_payment": _PAYMENT,
    "orphan_payment": _PAYMENT,
    "invalid_date": """
UPDATE {s}."STATEMENT" SET "DUE_DATE" = DATE '9999-12-31', "CHG_TS" = localtimestamp,
    "CHG_USER" = %(user)s
WHERE ("SITE_ID", "ACCOUNT_NO", "STMT_NO") = (
    SELECT "SITE_ID", "ACCOUNT_NO", max("STMT_NO") FROM {s}."STATEMENT"
    WHERE "SITE_ID" = %(site)s AND "ACCOUNT_NO" = %(account)s GROUP BY 1, 2)
RETURNING 1""",
    "bad_encoding": """
UPDATE {s}."ACCOUNT" SET "ACCT_NAME" = %(name)s, "CHG_TS" = localtimestamp,
    "CHG_USER" = %(user)s
WHERE "SITE_ID" = %(site)s AND "ACCOUNT_NO" = %(account)s AND "REC_STATUS" = 'A'
RETURNING 1""",
}


def bad_row_statements(schema: str) -> dict[str, sql.Composed]:
    """The SQL of every kind of bad row, for tables in ``schema``; each returns a row per
    row written."""
    return {
        kind: sql.SQL(template).format(s=sql.Identifier(schema))
        for kind, template in _TEMPLATES.items()
    }
