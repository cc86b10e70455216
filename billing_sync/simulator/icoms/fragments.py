"""The SQL fragments every ICOMS workload statement shares, and :func:`render`, which
fills a template's ``$S``, ``$NEW``, ``$STAMP``, ``$TODAY``, ``$AUDIT`` and ``$ACCT``."""

from __future__ import annotations

from billing_sync.simulator.clock import (
    ICOMS_STAMP_SET,
    ICOMS_STAMP_VALUES,
    ICOMS_TIMEZONE,
    ICOMS_TODAY_SQL,
)

_LOCAL = f"(now() AT TIME ZONE '{ICOMS_TIMEZONE}')"
_SUBST = {
    "$NEW": f"{ICOMS_STAMP_VALUES}, %(user)s, 'A'",
    "$STAMP": f'{ICOMS_STAMP_SET}, "CHG_USER" = %(user)s',
    "$TODAY": ICOMS_TODAY_SQL,
    "$AUDIT": '"CRT_DATE", "CRT_TIME", "CHG_DATE", "CHG_TIME", "CHG_USER", "REC_STATUS"',
    "$ACCT": 'x."SITE_ID" = %(site)s AND x."ACCOUNT_NO" = %(account)s',
}


_ACCOUNT_LOCKED = """
    SELECT x."SITE_ID", x."ACCOUNT_NO", x."AR_BALANCE" FROM $S."ACCOUNT" x
    WHERE $ACCT AND x."REC_STATUS" = 'A' {extra} FOR UPDATE"""


def _account(extra: str = "") -> str:
    return _ACCOUNT_LOCKED.format(extra=extra)


def in_days(days: int) -> str:
    """SQL: the ``CYYMMDD`` of today (local) plus ``days``."""
    return f"(to_char({_LOCAL}::date + {days}, 'YYYYMMDD')::int - 19000000)"


def _next(table: str, column: str, site: str = 'a."SITE_ID"') -> str:
    return f'COALESCE((SELECT max(n."{column}") FROM $S."{table}" n WHERE n."SITE_ID" = {site}), 0)'


_ACTIVE_ACCOUNT = _account("AND x.\"ACCT_STATUS\" = 'A'")

_BALANCE = """
    UPDATE $S."ACCOUNT" a SET "AR_BALANCE" = a."AR_BALANCE" + d.delta, $STAMP
    FROM {source} d WHERE a."SITE_ID" = d."SITE_ID" AND a."ACCOUNT_NO" = d."ACCOUNT_NO"
    RETURNING 1"""
_LEDGER_COLUMNS = ('"SITE_ID", "TRAN_NO", "ACCOUNT_NO", "STMT_NO", "TRAN_TYPE", '
                   '"SERVICE_CODE", "TRAN_DATE", "TRAN_AMT", "TRAN_DESC", $AUDIT')  # fmt: skip
_PICK_SERVICE = """
    ("SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE") = (
        SELECT "SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE" FROM (
            SELECT c."SITE_ID", c."ACCOUNT_NO", c."SERVICE_CODE", c."OCCURRENCE",
                   row_number() OVER (ORDER BY c."SERVICE_CODE", c."OCCURRENCE") AS n,
                   count(*) OVER () AS services
            FROM $S."CUST_SERVICE" c
            WHERE c."SITE_ID" = %(site)s AND c."ACCOUNT_NO" = %(account)s
              AND c."SVC_STATUS" = 'A' AND c."REC_STATUS" = 'A') active
        WHERE n = 1 + floor(%(pick)s::float8 * services)::int)"""
_WORK_ORDER_COLUMNS = ('"SITE_ID", "WO_NO", "ACCOUNT_NO", "WO_TYPE", "WO_STATUS", "SCHED_DATE", '
                       '"COMPLETE_DATE", "TECH_ID", "REMARKS", $AUDIT')  # fmt: skip
_WO_LINE_COLUMNS = ('"SITE_ID", "WO_NO", "LINE_NO", "SERVICE_CODE", "LINE_ACTION", "SERIAL_NO", '
                    '"LINE_CHARGE", $AUDIT')  # fmt: skip


def render(template: str, schema: str) -> str:
    """``template`` with ``$S`` (the quoted schema) and the stamp fragments filled in."""
    text = template
    for token, value in _SUBST.items():
        text = text.replace(token, value)
    return text.replace("$S", f'"{schema}"')
