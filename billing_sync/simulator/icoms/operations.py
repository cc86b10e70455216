"""The ICOMS business transactions of the change workload, one SQL statement each.

Each statement (data-modifying CTEs when it writes several tables) is one short
transaction on an autocommit connection. It numbers new rows itself (``max() + 1`` of
the site, read through the primary key, as the biller's control records would), stamps
every row it writes with ``CHG_DATE``/``CHG_TIME`` from its transaction's start (see
:mod:`~billing_sync.simulator.clock`) and returns how many rows it changed per table,
in the order of :attr:`~billing_sync.simulator.mix.OperationSpec.tables`.
"""

from __future__ import annotations

from billing_sync.simulator.icoms.fragments import (
    _ACTIVE_ACCOUNT,
    _BALANCE,
    _LEDGER_COLUMNS,
    _LOCAL,
    _account,
    _next,
    in_days,
    render,
)
from billing_sync.simulator.icoms.operations_more import TEMPLATES
from billing_sync.simulator.mix import OperationSpec

SPECS: tuple[OperationSpec, ...] = (
    OperationSpec("post_payment", 0.28, ("PAYMENT", "LEDGER", "ACCOUNT"), 3,
                  "INSERT PAYMENT (next PAYMENT_NO; card number and CVV when by card) + "
                  "LEDGER PAY line + ACCOUNT AR_BALANCE"),
    OperationSpec("reverse_payment", 0.015, ("PAYMENT", "LEDGER", "ACCOUNT"), 3,
                  "a recent PAYMENT to PAY_STATUS 'R' + LEDGER reversal + AR_BALANCE back"),
    OperationSpec("post_adjustment", 0.04, ("ADJUSTMENT", "LEDGER", "ACCOUNT"), 3,
                  "INSERT ADJUSTMENT (reason code, free-text MEMO) + LEDGER ADJ + AR_BALANCE"),
    OperationSpec("issue_statements", 0.25, ("STATEMENT", "LEDGER", "ACCOUNT"), 4 * 50,
                  "bill run: a batch of one site's cycle gets STATEMENT + LEDGER CHG and "
                  "TAX lines + AR_BALANCE, in one transaction (a burst)", table_rows=(1, 2, 1)),
    OperationSpec("usage_burst", 0.14, ("USAGE_EVENT",), 7.5,
                  "INSERT 3 to 12 USAGE_EVENT rows (VOD, PPV, calls) of one account"),
    OperationSpec("add_service", 0.04, ("CUST_SERVICE", "WORK_ORDER", "WO_LINE"), 3,
                  "INSERT CUST_SERVICE (next OCCURRENCE) + change WORK_ORDER and its line"),
    OperationSpec("change_service", 0.04, ("CUST_SERVICE",), 1,
                  "UPDATE CUST_SERVICE MONTHLY_RATE (re-price) or QUANTITY"),
    OperationSpec("disconnect_service", 0.02, ("CUST_SERVICE",), 1,
                  "SVC_STATUS 'D' + STOP_DATE; 10% also soft-delete (REC_STATUS 'D')"),
    OperationSpec("open_account", 0.05, ("PREMISE", "ACCOUNT", "CUST_SERVICE", "WORK_ORDER",
                                         "WO_LINE", "EQUIPMENT"), 10,
                  "INSERT PREMISE + ACCOUNT + 1-4 CUST_SERVICE + install WORK_ORDER, lines, "
                  "EQUIPMENT", table_rows=(1, 1, 2.5, 1, 2.5, 2)),
    OperationSpec("trouble_call", 0.02, ("WORK_ORDER", "WO_LINE"), 2,
                  "INSERT a trouble-call WORK_ORDER and its line"),
    OperationSpec("complete_work_order", 0.03, ("WORK_ORDER",), 1,
                  "a recent open WORK_ORDER to WO_STATUS 'C' with COMPLETE_DATE"),
    OperationSpec("swap_equipment", 0.01, ("EQUIPMENT", "EQUIPMENT"), 2,
                  "EQUIPMENT returned (EQ_STATUS 'R') + a new unit installed"),
    OperationSpec("collections_step", 0.03, ("COLL_ACTIVITY", "ACCOUNT"), 2,
                  "next COLL_ACTIVITY step (reminder, notice, call, suspend) + ACCOUNT"),
    OperationSpec("restore_account", 0.01, ("ACCOUNT", "COLL_ACTIVITY"), 2,
                  "suspended ACCOUNT back to 'A' + COLL_ACTIVITY 'CU' (cured)"),
    OperationSpec("close_account", 0.005, ("ACCOUNT", "CUST_SERVICE", "WORK_ORDER"), 4,
                  "ACCOUNT to 'C', its services disconnected, a disconnect WORK_ORDER"),
    OperationSpec("update_account_profile", 0.02, ("ACCOUNT",), 1,
                  "UPDATE ACCOUNT ACCT_NAME (may become '' or NULL), CREDIT_CLASS, PIN"),
    OperationSpec("update_premise", 0.005, ("PREMISE",), 1,
                  "UPDATE PREMISE NODE_ID (a node split)"),
    OperationSpec("rate_change", 0.002, ("SERVICE_CODE",), 1,
                  "UPDATE SERVICE_CODE RATE and EFF_DATE of one site"),
    OperationSpec("purge_usage", 0.002, ("USAGE_EVENT",), 1,
                  "hard DELETE of an old USAGE_EVENT (re-rating purge)", hard_delete=True),
)  # fmt: skip

_TEMPLATES: dict[str, str] = {
    "post_payment": f"""
WITH a AS ({_account()}), d AS (
    SELECT a."SITE_ID", a."ACCOUNT_NO",
           CASE WHEN a."AR_BALANCE" >= 1 THEN round(a."AR_BALANCE" * %(share)s::numeric, 2)
                ELSE %(amount)s::numeric END AS paid,
           {_next("PAYMENT", "PAYMENT_NO")} + 1 AS payment_no,
           {_next("LEDGER", "TRAN_NO")} + 1 AS tran_no
    FROM a
), paid AS (
    INSERT INTO $S."PAYMENT" ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE", "AMOUNT",
        "PAY_METHOD", "PAY_STATUS", "CARD_NO", "CARD_EXP", "CVV", $AUDIT)
    SELECT "SITE_ID", payment_no, "ACCOUNT_NO", $TODAY, paid, %(method)s, 'P', %(card)s,
           %(expiry)s, %(cvv)s, $NEW FROM d RETURNING 1
), ledger AS (
    INSERT INTO $S."LEDGER" ({_LEDGER_COLUMNS})
    SELECT "SITE_ID", tran_no, "ACCOUNT_NO", 0, 'PAY', NULL, $TODAY, -(paid * 100)::int,
           'PAYMENT - THANK YOU', $NEW FROM d RETURNING 1
), balance AS ({_BALANCE.format(source="(SELECT *, -paid AS delta FROM d)")})
SELECT (SELECT count(*) FROM paid), (SELECT count(*) FROM ledger),
       (SELECT count(*) FROM balance)""",
    "reverse_payment": f"""
WITH p AS (
    SELECT p."SITE_ID", p."PAYMENT_NO", p."ACCOUNT_NO", p."AMOUNT" FROM $S."PAYMENT" p
    WHERE p."SITE_ID" = %(site)s AND p."PAY_STATUS" = 'P' AND p."REC_STATUS" = 'A'
      AND p."PAYMENT_NO" = {_next("PAYMENT", "PAYMENT_NO", "%(site)s")} - %(back)s
    FOR UPDATE
), reversed AS (
    UPDATE $S."PAYMENT" x SET "PAY_STATUS" = 'R', $STAMP FROM p
    WHERE x."SITE_ID" = p."SITE_ID" AND x."PAYMENT_NO" = p."PAYMENT_NO" RETURNING 1
), d AS (
    SELECT p."SITE_ID", p."ACCOUNT_NO", p."AMOUNT" AS delta,
           {_next("LEDGER", "TRAN_NO", "%(site)s")} + 1 AS tran_no FROM p
), ledger AS (
    INSERT INTO $S."LEDGER" ({_LEDGER_COLUMNS})
    SELECT "SITE_ID", tran_no, "ACCOUNT_NO", 0, 'PAY', NULL, $TODAY, (delta * 100)::int,
           'PAYMENT REVERSAL', $NEW FROM d RETURNING 1
), balance AS ({_BALANCE.format(source="d")})
SELECT (SELECT count(*) FROM reversed), (SELECT count(*) FROM ledger),
       (SELECT count(*) FROM balance)""",
    "post_adjustment": f"""
WITH a AS ({_account()}), d AS (
    SELECT a."SITE_ID", a."ACCOUNT_NO", %(cents)s::int / 100.0 AS delta,
           {_next("ADJUSTMENT", "ADJ_NO")} + 1 AS adj_no,
           {_next("LEDGER", "TRAN_NO")} + 1 AS tran_no
    FROM a
), adjusted AS (
    INSERT INTO $S."ADJUSTMENT" ("SITE_ID", "ADJ_NO", "ACCOUNT_NO", "ADJ_DATE", "ADJ_AMT",
        "REASON_CD", "MEMO", $AUDIT)
    SELECT "SITE_ID", adj_no, "ACCOUNT_NO", $TODAY, %(cents)s, %(reason)s, %(memo)s, $NEW
    FROM d RETURNING 1
), ledger AS (
    INSERT INTO $S."LEDGER" ({_LEDGER_COLUMNS})
    SELECT "SITE_ID", tran_no, "ACCOUNT_NO", 0, 'ADJ', NULL, $TODAY, %(cents)s,
           'ADJUSTMENT ' || %(reason)s, $NEW FROM d RETURNING 1
), balance AS ({_BALANCE.format(source="d")})
SELECT (SELECT count(*) FROM adjusted), (SELECT count(*) FROM ledger),
       (SELECT count(*) FROM balance)""",
    "issue_statements": f"""
WITH picked AS (
    SELECT a."SITE_ID", a."ACCOUNT_NO", a."AR_BALANCE" AS previous FROM $S."ACCOUNT" a
    WHERE a."SITE_ID" = %(site)s AND a."BILL_CYCLE" = %(cycle)s AND a."ACCOUNT_NO" > %(after)s
      AND a."ACCT_STATUS" <> 'C' AND a."REC_STATUS" = 'A'
    ORDER BY a."ACCOUNT_NO" LIMIT %(batch)s FOR UPDATE
), billed AS (
    SELECT p.*, row_number() OVER (ORDER BY p."ACCOUNT_NO") AS n,
           COALESCE((SELECT sum(c."MONTHLY_RATE" * c."QUANTITY") FROM $S."CUST_SERVICE" c
                     WHERE c."SITE_ID" = p."SITE_ID" AND c."ACCOUNT_NO" = p."ACCOUNT_NO"
                       AND c."SVC_STATUS" = 'A' AND c."REC_STATUS" = 'A'), 0) AS charges,
           1 + COALESCE((SELECT max(t."STMT_NO") FROM $S."STATEMENT" t
                         WHERE t."SITE_ID" = p."SITE_ID" AND t."ACCOUNT_NO" = p."ACCOUNT_NO"),
                        0) AS stmt_no
    FROM picked p
), d AS (
    SELECT b.*, round(b.charges * 0.075, 2) AS tax,
           b.charges + round(b.charges * 0.075, 2) AS delta,
           {_next("LEDGER", "TRAN_NO", "%(site)s")} AS top
    FROM billed b
), issued AS (
    INSERT INTO $S."STATEMENT" ("SITE_ID", "ACCOUNT_NO", "STMT_NO", "STMT_DATE", "DUE_DATE",
        "PREV_BALANCE", "NEW_CHARGES", "AMOUNT_DUE", $AUDIT)
    SELECT "SITE_ID", "ACCOUNT_NO", stmt_no, $TODAY, {in_days(21)}, previous, delta,
           previous + delta, $NEW
    FROM d RETURNING 1
), ledger AS (
    INSERT INTO $S."LEDGER" ({_LEDGER_COLUMNS})
    SELECT "SITE_ID", top + 2 * n - 1, "ACCOUNT_NO", stmt_no, 'CHG', NULL, $TODAY,
           (charges * 100)::int, 'MONTHLY SERVICE', $NEW FROM d
    UNION ALL
    SELECT "SITE_ID", top + 2 * n, "ACCOUNT_NO", stmt_no, 'TAX', NULL, $TODAY, (tax * 100)::int,
           'FRANCHISE AND SALES TAX', $NEW FROM d
    RETURNING 1
), balance AS ({_BALANCE.format(source="d")})
SELECT (SELECT count(*) FROM issued), (SELECT count(*) FROM ledger),
       (SELECT count(*) FROM balance), (SELECT max("ACCOUNT_NO") FROM picked)""",
    "usage_burst": f"""
WITH a AS ({_ACTIVE_ACCOUNT}), d AS (
    SELECT a."SITE_ID", a."ACCOUNT_NO", {_next("USAGE_EVENT", "EVENT_NO")} AS top FROM a
), added AS (
    INSERT INTO $S."USAGE_EVENT" ("SITE_ID", "EVENT_NO", "ACCOUNT_NO", "EVENT_TYPE",
        "EVENT_DATE", "EVENT_TIME", "DURATION_SEC", "EVENT_DESC", "CHARGE_AMT", $AUDIT)
    SELECT d."SITE_ID", d.top + v.n, d."ACCOUNT_NO", v.kind,
           to_char({_LOCAL} - v.ago * interval '1 second', 'YYYYMMDD')::int - 19000000,
           to_char({_LOCAL} - v.ago * interval '1 second', 'HH24MISS')::int,
           v.duration, v.text, v.cents, $NEW
    FROM d CROSS JOIN unnest(%(kinds)s::text[], %(agos)s::int[], %(durations)s::int[],
                             %(texts)s::text[], %(cents)s::int[])
         WITH ORDINALITY AS v(kind, ago, duration, text, cents, n)
    RETURNING 1
)
SELECT count(*) FROM added""",
}


def templates() -> dict[str, str]:
    return {**_TEMPLATES, **TEMPLATES}


def operation_statements(schema: str) -> dict[str, str]:
    """The SQL of every ICOMS operation, for tables in ``schema``."""
    return {name: render(template, schema) for name, template in templates().items()}


__all__ = ["SPECS", "operation_statements", "templates"]
