"""The Amdocs business transactions of the change workload, one SQL statement each.

Conventions of :mod:`billing_sync.simulator.icoms.operations`: one statement is one
transaction; new rows take the next number (``max() + 1``, the sequences of the real
system); inserts set ``SYS_CREATION_DATE``, updates ``SYS_UPDATE_DATE``, both from the
transaction's start truncated to the second (UTC); ``OPERATOR_ID`` names who wrote.
"""

from __future__ import annotations

from billing_sync.simulator.clock import AMDOCS_NOW, AMDOCS_TODAY_SQL
from billing_sync.simulator.mix import OperationSpec

_SUBST = {
    "$NEW": f"{AMDOCS_NOW}, NULL::timestamp, %(operator)s",
    "$STAMP": f'"SYS_UPDATE_DATE" = {AMDOCS_NOW}, "OPERATOR_ID" = %(operator)s',
    "$TODAY": AMDOCS_TODAY_SQL,
    "$AUDIT": '"SYS_CREATION_DATE", "SYS_UPDATE_DATE", "OPERATOR_ID"',
}

SPECS: tuple[OperationSpec, ...] = (
    OperationSpec("post_payment", 0.28, ("PAYMENT", "BILLING_ACCOUNT"), 2,
                  "INSERT PAYMENT (float ACTV_AMT; card number when by card) + AR_BALANCE"),
    OperationSpec("backout_payment", 0.01, ("PAYMENT", "BILLING_ACCOUNT"), 2,
                  "a recent PAYMENT backed out (PYM_STATUS 'B') + AR_BALANCE back"),
    OperationSpec("post_adjustment", 0.04, ("ADJUSTMENT", "BILLING_ACCOUNT"), 2,
                  "INSERT ADJUSTMENT (reason, MEMO_TEXT) + AR_BALANCE"),
    OperationSpec("bill_run", 0.30, ("BILL", "CHARGE", "BILLING_ACCOUNT"), 4 * 50,
                  "bill run: a batch of one cycle's BANs gets BILL + recurring and tax "
                  "CHARGE rows + AR_BALANCE, one transaction (a burst)", table_rows=(1, 2, 1)),
    OperationSpec("usage_burst", 0.20, ("USAGE",), 7.5,
                  "INSERT 3 to 12 USAGE rows (calls, SMS, data) of one subscriber"),
    OperationSpec("add_soc", 0.04, ("SERVICE_AGREEMENT",), 1,
                  "INSERT SERVICE_AGREEMENT: a feature SOC on a subscriber"),
    OperationSpec("expire_soc", 0.02, ("SERVICE_AGREEMENT",), 1,
                  "a feature SOC expires (SOC_STATUS 'C', EXPIRATION_DATE)"),
    OperationSpec("open_account", 0.05, ("CUSTOMER", "BILLING_ACCOUNT", "SUBSCRIBER",
                                         "SERVICE_AGREEMENT"), 5,
                  "INSERT CUSTOMER + BILLING_ACCOUNT + SUBSCRIBER + price plan and feature SOCs",
                  table_rows=(1, 1, 1, 2)),
    OperationSpec("add_subscriber", 0.03, ("SUBSCRIBER", "SERVICE_AGREEMENT"), 3,
                  "a new line on a BAN: SUBSCRIBER + its SOCs", table_rows=(1, 2)),
    OperationSpec("collections_step", 0.03, ("BILLING_ACCOUNT", "SUBSCRIBER"), 2.5,
                  "collections: COL_DELINQ_STATUS steps; at the last, BAN and its "
                  "subscribers suspended", table_rows=(1, 1.5)),
    OperationSpec("restore_account", 0.01, ("BILLING_ACCOUNT", "SUBSCRIBER"), 2.5,
                  "suspended BAN and subscribers restored", table_rows=(1, 1.5)),
    OperationSpec("update_customer", 0.02, ("CUSTOMER",), 1,
                  "UPDATE CUSTOMER name"),
    OperationSpec("change_password", 0.005, ("BILLING_ACCOUNT",), 1,
                  "UPDATE BILLING_ACCOUNT ACC_PASSWORD"),
    OperationSpec("delete_usage", 0.003, ("USAGE",), 1,
                  "hard DELETE of a USAGE row (re-rated)", hard_delete=True),
)  # fmt: skip

_BA = '"BILLING_ACCOUNT"'
_BALANCE = """
    UPDATE $S."BILLING_ACCOUNT" b SET "AR_BALANCE" = b."AR_BALANCE" + d.delta, $STAMP
    FROM {source} d WHERE b."BAN" = d."BAN" RETURNING 1"""
_OPEN_BAN = """
    SELECT b."BAN", b."CUSTOMER_ID", b."AR_BALANCE" FROM $S."BILLING_ACCOUNT" b
    WHERE b."BAN" = %(ban)s AND b."BAN_STATUS" IN ('O', 'S') FOR UPDATE"""
_NEXT_ENT = 'COALESCE((SELECT max("ENT_SEQ_NO") FROM $S."{table}"), 0) + 1'
_SA_COLUMNS = ('"SUBSCRIBER_NO", "SOC", "SOC_SEQ_NO", "BAN", "SERVICE_TYPE", "EFFECTIVE_DATE", '
               '"EXPIRATION_DATE", "SOC_RATE", "SOC_STATUS", $AUDIT')  # fmt: skip
_NEXT_SOC_SEQ = 'COALESCE((SELECT max("SOC_SEQ_NO") FROM $S."SERVICE_AGREEMENT"), 0)'
_NEW_SOCS = f"""
    INSERT INTO $S."SERVICE_AGREEMENT" ({_SA_COLUMNS})
    SELECT s.number, v.soc, {_NEXT_SOC_SEQ} + v.n, s."BAN", v.kind, $TODAY, NULL, v.rate, 'A', $NEW
    FROM s CROSS JOIN unnest(%(socs)s::text[], %(kinds)s::text[], %(rates)s::float8[])
         WITH ORDINALITY AS v(soc, kind, rate, n)
    RETURNING 1"""
_SUBSCRIBER_COLUMNS = ('"SUBSCRIBER_NO", "BAN", "SUB_STATUS", "DEVICE_MODEL", '
                       '"INIT_ACTIVATION_DATE", "CANCEL_DATE", $AUDIT')  # fmt: skip
TEMPLATES: dict[str, str] = {
    "post_payment": f"""
WITH a AS ({_OPEN_BAN}), d AS (
    SELECT a."BAN", CASE WHEN a."AR_BALANCE" >= 1
                         THEN round((a."AR_BALANCE" * %(share)s)::numeric, 2)::float8
                         ELSE %(amount)s::float8 END AS paid,
           {_NEXT_ENT.format(table="PAYMENT")} AS ent
    FROM a
), paid AS (
    INSERT INTO $S."PAYMENT" ("ENT_SEQ_NO", "BAN", "DEPOSIT_DATE", "ACTV_AMT", "PYM_METHOD",
        "PYM_STATUS", "CR_CARD_NO", $AUDIT)
    SELECT ent, "BAN", $TODAY, paid, %(method)s, 'A', %(card)s, $NEW FROM d RETURNING 1
), balance AS ({_BALANCE.format(source="(SELECT *, -paid AS delta FROM d)")})
SELECT (SELECT count(*) FROM paid), (SELECT count(*) FROM balance)""",
    "backout_payment": f"""
WITH p AS (
    SELECT p."ENT_SEQ_NO", p."BAN", p."ACTV_AMT" AS delta FROM $S."PAYMENT" p
    WHERE p."PYM_STATUS" = 'A'
      AND p."ENT_SEQ_NO" = (SELECT max("ENT_SEQ_NO") FROM $S."PAYMENT") - %(back)s
    FOR UPDATE
), backed AS (
    UPDATE $S."PAYMENT" x SET "PYM_STATUS" = 'B', $STAMP FROM p
    WHERE x."ENT_SEQ_NO" = p."ENT_SEQ_NO" RETURNING 1
), balance AS ({_BALANCE.format(source="p")})
SELECT (SELECT count(*) FROM backed), (SELECT count(*) FROM balance)""",
    "post_adjustment": f"""
WITH a AS ({_OPEN_BAN}), d AS (
    SELECT a."BAN", %(amount)s::float8 AS delta, {_NEXT_ENT.format(table="ADJUSTMENT")} AS ent
    FROM a
), adjusted AS (
    INSERT INTO $S."ADJUSTMENT" ("ENT_SEQ_NO", "BAN", "ACTV_DATE", "ACTV_AMT", "ACTV_REASON_CODE",
        "MEMO_TEXT", $AUDIT)
    SELECT ent, "BAN", $TODAY, delta, %(reason)s, %(memo)s, $NEW FROM d RETURNING 1
), balance AS ({_BALANCE.format(source="d")})
SELECT (SELECT count(*) FROM adjusted), (SELECT count(*) FROM balance)""",
    "bill_run": f"""
WITH picked AS (
    SELECT b."BAN", b."AR_BALANCE" AS previous FROM $S."BILLING_ACCOUNT" b
    WHERE b."BILL_CYCLE" = %(cycle)s AND b."BAN" > %(after)s AND b."BAN_STATUS" IN ('O', 'S')
    ORDER BY b."BAN" LIMIT %(batch)s FOR UPDATE
), billed AS (
    SELECT p.*, row_number() OVER (ORDER BY p."BAN") AS n,
           COALESCE((SELECT sum(a."SOC_RATE") FROM $S."SERVICE_AGREEMENT" a
                     WHERE a."BAN" = p."BAN" AND a."SOC_STATUS" = 'A'), 0) AS charges,
           1 + COALESCE((SELECT max(t."BILL_SEQ_NO") FROM $S."BILL" t WHERE t."BAN" = p."BAN"), 0)
               AS seq
    FROM picked p
), d AS (
    SELECT b.*, round((b.charges * 0.11)::numeric, 2) AS tax,
           (b.charges + round((b.charges * 0.11)::numeric, 2))::float8 AS delta,
           COALESCE((SELECT max("ENT_SEQ_NO") FROM $S."CHARGE"), 0) AS top
    FROM billed b
), issued AS (
    INSERT INTO $S."BILL" ("BAN", "BILL_SEQ_NO", "CYCLE_CODE", "BILL_DATE", "DUE_DATE",
        "PREV_BALANCE_AMT", "CUR_CHARGES_AMT", "TOTAL_DUE_AMT", $AUDIT)
    SELECT "BAN", seq, %(cycle)s, $TODAY, $TODAY + 20, round(previous::numeric, 2),
           round(delta::numeric, 2), round((previous + delta)::numeric, 2), $NEW
    FROM d RETURNING 1
), charged AS (
    INSERT INTO $S."CHARGE" ("ENT_SEQ_NO", "BAN", "SUBSCRIBER_NO", "BILL_SEQ_NO", "CHARGE_TYPE",
        "FEATURE_CODE", "CHG_CREATION_DATE", "AMOUNT", "CHARGE_DESC", $AUDIT)
    SELECT top + 2 * n - 1, "BAN", NULL, seq, 'R', NULL, $TODAY, charges, 'MONTHLY SERVICE', $NEW
    FROM d
    UNION ALL
    SELECT top + 2 * n, "BAN", NULL, seq, 'T', NULL, $TODAY, tax::float8, 'TAXES AND SURCHARGES',
           $NEW FROM d
    RETURNING 1
), balance AS ({_BALANCE.format(source="d")})
SELECT (SELECT count(*) FROM issued), (SELECT count(*) FROM charged),
       (SELECT count(*) FROM balance), (SELECT max("BAN") FROM picked)""",
    "usage_burst": """
WITH s AS (
    SELECT s."SUBSCRIBER_NO", s."BAN" FROM $S."SUBSCRIBER" s
    WHERE s."BAN" = %(ban)s AND s."SUB_STATUS" = 'A' ORDER BY s."SUBSCRIBER_NO" LIMIT 1
), added AS (
    INSERT INTO $S."USAGE" ("EVENT_ID", "BAN", "SUBSCRIBER_NO", "CALL_TYPE", "CHANNEL_SEIZURE_DT",
        "EVENT_UNITS", "OTHER_PARTY", "CHARGE_AMT", $AUDIT)
    SELECT COALESCE((SELECT max("EVENT_ID") FROM $S."USAGE"), 0) + v.n, s."BAN", s."SUBSCRIBER_NO",
           v.kind, date_trunc('second', now() AT TIME ZONE 'UTC') - v.ago * interval '1 second',
           v.units, v.other, v.charge, $NEW
    FROM s CROSS JOIN unnest(%(kinds)s::text[], %(agos)s::int[], %(units)s::int[],
                             %(others)s::text[], %(charges)s::float8[])
         WITH ORDINALITY AS v(kind, ago, units, other, charge, n)
    RETURNING 1
)
SELECT count(*) FROM added""",
    "add_soc": f"""
WITH s AS (
    SELECT s."SUBSCRIBER_NO" AS number, s."BAN" FROM $S."SUBSCRIBER" s
    WHERE s."BAN" = %(ban)s AND s."SUB_STATUS" = 'A' ORDER BY s."SUBSCRIBER_NO" LIMIT 1
), added AS ({_NEW_SOCS})
SELECT count(*) FROM added""",
    "expire_soc": """
WITH expired AS (
    UPDATE $S."SERVICE_AGREEMENT" SET "SOC_STATUS" = 'C', "EXPIRATION_DATE" = $TODAY, $STAMP
    WHERE ("SUBSCRIBER_NO", "SOC", "SOC_SEQ_NO") = (
        SELECT a."SUBSCRIBER_NO", a."SOC", a."SOC_SEQ_NO" FROM $S."SERVICE_AGREEMENT" a
        WHERE a."BAN" = %(ban)s AND a."SOC_STATUS" = 'A' AND a."SERVICE_TYPE" = 'R'
        ORDER BY a."SOC_SEQ_NO" LIMIT 1)
    RETURNING 1
)
SELECT count(*) FROM expired""",
    "open_account": f"""
WITH c AS (
    SELECT COALESCE((SELECT max("CUSTOMER_ID") FROM $S."CUSTOMER"), 5000000) + 1 AS id,
           COALESCE((SELECT max("BAN") FROM $S."BILLING_ACCOUNT"), 20000000) + 1 AS ban
), customer AS (
    INSERT INTO $S."CUSTOMER" ("CUSTOMER_ID", "CUSTOMER_TYPE", "FIRST_NAME", "LAST_NAME", "SSN",
        "BIRTH_DATE", "CUSTOMER_SINCE", $AUDIT)
    SELECT id, %(type)s, %(first)s, %(last)s, %(ssn)s, %(birth)s::date, $TODAY, $NEW FROM c
    RETURNING 1
), account AS (
    INSERT INTO $S."BILLING_ACCOUNT" ("BAN", "CUSTOMER_ID", "PARENT_BAN", "BAN_NAME",
        "ACCOUNT_TYPE", "BAN_STATUS", "STATUS_LAST_DATE", "COL_DELINQ_STATUS", "BILL_CYCLE",
        "AR_BALANCE", "CREDIT_CLASS", "ACC_PASSWORD", "START_SERVICE_DATE", $AUDIT)
    SELECT ban, id, NULL, %(name)s, %(type)s, 'O', $TODAY, NULL, %(cycle)s::smallint, 0,
           %(credit)s, %(password)s, $TODAY, $NEW FROM c
    RETURNING "BAN"
), s AS (
    SELECT %(number)s::varchar AS number, ban AS "BAN" FROM c
), subscriber AS (
    INSERT INTO $S."SUBSCRIBER" ({_SUBSCRIBER_COLUMNS})
    SELECT number, "BAN", 'A', %(model)s, $TODAY, NULL, $NEW FROM s RETURNING 1
), socs AS ({_NEW_SOCS})
SELECT (SELECT count(*) FROM customer), (SELECT count(*) FROM account),
       (SELECT count(*) FROM subscriber), (SELECT count(*) FROM socs),
       (SELECT max("BAN") FROM account)""",
    "add_subscriber": f"""
WITH a AS ({_OPEN_BAN}), s AS (
    SELECT %(number)s::varchar AS number, a."BAN" FROM a
), subscriber AS (
    INSERT INTO $S."SUBSCRIBER" ({_SUBSCRIBER_COLUMNS})
    SELECT number, "BAN", 'A', %(model)s, $TODAY, NULL, $NEW FROM s RETURNING 1
), socs AS ({_NEW_SOCS})
SELECT (SELECT count(*) FROM subscriber), (SELECT count(*) FROM socs)""",
    "collections_step": f"""
WITH a AS (
    SELECT b."BAN", b."COL_DELINQ_STATUS" FROM $S.{_BA} b
    WHERE b."BAN" = %(ban)s AND b."BAN_STATUS" = 'O' AND b."AR_BALANCE" > 0 FOR UPDATE
), d AS (
    SELECT a."BAN", CASE a."COL_DELINQ_STATUS" WHEN '1' THEN '2' WHEN '2' THEN 'S'
                                               ELSE '1' END AS step FROM a
), account AS (
    UPDATE $S.{_BA} b SET "COL_DELINQ_STATUS" = d.step,
        "BAN_STATUS" = CASE WHEN d.step = 'S' THEN 'S' ELSE b."BAN_STATUS" END,
        "STATUS_LAST_DATE" = $TODAY, $STAMP
    FROM d WHERE b."BAN" = d."BAN" RETURNING 1
), subscribers AS (
    UPDATE $S."SUBSCRIBER" s SET "SUB_STATUS" = 'S', $STAMP FROM d
    WHERE d.step = 'S' AND s."BAN" = d."BAN" AND s."SUB_STATUS" = 'A' RETURNING 1
)
SELECT (SELECT count(*) FROM account), (SELECT count(*) FROM subscribers)""",
    "restore_account": f"""
WITH a AS (
    SELECT b."BAN" FROM $S.{_BA} b
    WHERE b."BAN" >= %(ban)s AND b."BAN_STATUS" = 'S' ORDER BY b."BAN" LIMIT 1 FOR UPDATE
), account AS (
    UPDATE $S.{_BA} b SET "BAN_STATUS" = 'O', "COL_DELINQ_STATUS" = NULL,
        "STATUS_LAST_DATE" = $TODAY, $STAMP
    FROM a WHERE b."BAN" = a."BAN" RETURNING 1
), subscribers AS (
    UPDATE $S."SUBSCRIBER" s SET "SUB_STATUS" = 'A', $STAMP FROM a
    WHERE s."BAN" = a."BAN" AND s."SUB_STATUS" = 'S' RETURNING 1
)
SELECT (SELECT count(*) FROM account), (SELECT count(*) FROM subscribers)""",
    "update_customer": """
WITH customer AS (
    UPDATE $S."CUSTOMER" c SET "LAST_NAME" = %(last)s, $STAMP FROM $S."BILLING_ACCOUNT" b
    WHERE b."BAN" = %(ban)s AND c."CUSTOMER_ID" = b."CUSTOMER_ID" RETURNING 1
)
SELECT count(*) FROM customer""",
    "change_password": f"""
WITH account AS (
    UPDATE $S.{_BA} SET "ACC_PASSWORD" = %(password)s, $STAMP WHERE "BAN" = %(ban)s RETURNING 1
)
SELECT count(*) FROM account""",
    "delete_usage": """
WITH deleted AS (
    DELETE FROM $S."USAGE"
    WHERE "EVENT_ID" = (SELECT floor(max("EVENT_ID") * %(fraction)s::float8)::bigint
                        FROM $S."USAGE")
    RETURNING 1
)
SELECT count(*) FROM deleted""",
}


def render(template: str, schema: str) -> str:
    """``template`` with the stamp fragments and ``$S`` (the quoted schema) filled in."""
    text = template
    for token, value in _SUBST.items():
        text = text.replace(token, value)
    return text.replace("$S", f'"{schema}"')


def operation_statements(schema: str) -> dict[str, str]:
    """The SQL of every Amdocs operation, for tables in ``schema``."""
    return {name: render(template, schema) for name, template in TEMPLATES.items()}
