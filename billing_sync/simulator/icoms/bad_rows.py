"""Bad rows a real ICOMS produces now and then, for the workload to inject (off by default).

Each kind writes one row, in one short transaction, stamped like every other write:

``negative_payment``  a payment with a negative amount (reversals should use status R)
``orphan_payment``    a payment for an account number not opened yet (opened a little later
                      by the workload's ``open_account``, which releases it from quarantine)
``invalid_date``      a statement whose due date was keyed as year 2199 (``2991231``)
``bad_encoding``      an account name mangled by a wrong code page (UTF-8 read as Latin-1,
                      or a replacement character)
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from billing_sync.simulator.icoms.fragments import render

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
MISTYPED_DUE_DATE = 2_991_231
"""``CYYMMDD`` of 2199-12-31: a valid date no bill is due on."""

_PAYMENT = """
INSERT INTO $S."PAYMENT" ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE", "AMOUNT",
    "PAY_METHOD", "PAY_STATUS", "CARD_NO", "CARD_EXP", "CVV", $AUDIT)
SELECT %(site)s, COALESCE(max("PAYMENT_NO"), 0) + 1, %(account)s, $TODAY, %(amount)s::numeric,
       'CA', 'P', NULL, NULL, NULL, $NEW
FROM $S."PAYMENT" WHERE "SITE_ID" = %(site)s
RETURNING 1"""

_TEMPLATES: dict[str, str] = {
    "negative_payment": _PAYMENT,
    "orphan_payment": _PAYMENT,
    "invalid_date": """
UPDATE $S."STATEMENT" SET "DUE_DATE" = %(due)s, $STAMP
WHERE ("SITE_ID", "ACCOUNT_NO", "STMT_NO") = (
    SELECT "SITE_ID", "ACCOUNT_NO", max("STMT_NO") FROM $S."STATEMENT"
    WHERE "SITE_ID" = %(site)s AND "ACCOUNT_NO" = %(account)s GROUP BY 1, 2)
RETURNING 1""",
    "bad_encoding": """
UPDATE $S."ACCOUNT" x SET "ACCT_NAME" = %(name)s, $STAMP
WHERE $ACCT AND x."REC_STATUS" = 'A'
RETURNING 1""",
}


def bad_row_statements(schema: str) -> dict[str, str]:
    """The SQL of every kind of bad row, for tables in ``schema``; each returns a row per
    row written."""
    return {kind: render(template, schema) for kind, template in _TEMPLATES.items()}


def bad_row_params(
    kind: str, rng: random.Random, *, site: str, account: str, next_account: int
) -> tuple[dict[str, Any], str]:
    """Parameters of one bad row of ``kind`` on ``account`` and the table it writes."""
    params: dict[str, Any] = {"site": site, "account": account, "user": "BADROW"}
    if kind in ("negative_payment", "orphan_payment"):
        params["amount"] = Decimal(rng.randint(500, 9000)) / 100
        if kind == "negative_payment":
            params["amount"] = -params["amount"]
        else:  # an account the workload opens a little later
            params["account"] = f"{next_account:08d}"
    elif kind == "invalid_date":
        params["due"] = MISTYPED_DUE_DATE
    elif kind == "bad_encoding":
        params["name"] = rng.choice(MANGLED_NAMES)
    return params, BAD_TABLES[kind]
