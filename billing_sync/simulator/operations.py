"""The business operations of the change workload, each one short source transaction.

Every operation is a single SQL statement (data-modifying CTEs where it writes more than
one table) that stamps ``CHG_TS = localtimestamp``: the start time of its transaction,
as a biller application stamps rows, so all rows of one transaction share ``CHG_TS``.
Inserts set ``CRT_TS`` and ``CHG_TS`` to the same value. The statements return how many
rows they changed per table.

:data:`MIX` says how the changed rows split between operations; :func:`describe_mix`
prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from psycopg import sql

DEFAULT_STATEMENT_BATCH = 200
"""Most statements one statement-run transaction issues (fewer at low rates)."""


@dataclass(frozen=True)
class OperationSpec:
    """One kind of source transaction in the workload.

    Attributes
    ----------
    name
        Identifier, also the key of :meth:`Workload.operations
        <billing_sync.simulator.workload.Workload.operations>`.
    row_share
        Share of all changed rows that this operation should produce.
    tables
        Tables it writes, in the order of the counts its statement returns.
    description
        What a biller does here, for :func:`describe_mix`.
    """

    name: str
    row_share: float
    tables: tuple[str, ...]
    description: str


MIX: tuple[OperationSpec, ...] = (
    OperationSpec("post_payment", 0.40, ("PAYMENT", "ACCOUNT"),
                  "INSERT PAYMENT (next PAYMENT_NO of the site) + UPDATE ACCOUNT AR_BALANCE"),
    OperationSpec("reverse_payment", 0.02, ("PAYMENT", "ACCOUNT"),
                  "recent PAYMENT to PAY_STATUS 'R' + UPDATE ACCOUNT AR_BALANCE back"),
    OperationSpec("add_service", 0.05, ("CUST_SERVICE",),
                  "INSERT CUST_SERVICE with the next OCCURRENCE of its SERVICE_CODE"),
    OperationSpec("change_service", 0.08, ("CUST_SERVICE",),
                  "UPDATE CUST_SERVICE MONTHLY_RATE (re-price) or QUANTITY"),
    OperationSpec("disconnect_service", 0.04, ("CUST_SERVICE",),
                  "SVC_STATUS 'D' + STOP_DATE; 10% also soft-delete (REC_STATUS 'D')"),
    OperationSpec("issue_statements", 0.30, ("STATEMENT", "ACCOUNT"),
                  "statement run: INSERT STATEMENT for a batch of one bill cycle's "
                  "accounts + UPDATE their AR_BALANCE, one transaction"),
    OperationSpec("open_account", 0.05, ("ACCOUNT", "CUST_SERVICE"),
                  "INSERT ACCOUNT + 1 to 4 CUST_SERVICE rows"),
    OperationSpec("change_account_status", 0.03, ("ACCOUNT", "CUST_SERVICE"),
                  "suspend, restore or close an account (closing disconnects its services)"),
    OperationSpec("update_account_profile", 0.03, ("ACCOUNT",),
                  "UPDATE ACCOUNT ACCT_NAME (may become '' or NULL) and CREDIT_CLASS"),
)  # fmt: skip
MIX_BY_NAME: dict[str, OperationSpec] = {spec.name: spec for spec in MIX}

EXPECTED_ROWS: dict[str, float] = {
    "post_payment": 2,
    "reverse_payment": 2,
    "add_service": 1,
    "change_service": 1,
    "disconnect_service": 1,
    "open_account": 3.5,
    "change_account_status": 1.5,
    "update_account_profile": 1,
}
"""Rows an operation changes on average; ``issue_statements`` is twice its batch size."""


def statement_batch_for(rate: float, statement_batch: int = DEFAULT_STATEMENT_BATCH) -> int:
    """Accounts per statement run at ``rate`` rows/s: at most a quarter second of budget."""
    return max(1, min(statement_batch, int(rate / 8)))


def operation_weights(statement_rows: float) -> dict[str, float]:
    """Relative frequency of each operation, so that rows split as :data:`MIX` says.

    Parameters
    ----------
    statement_rows
        Rows one statement run writes: twice the accounts it bills.
    """
    weights = {}
    for spec in MIX:
        rows = statement_rows if spec.name == "issue_statements" else EXPECTED_ROWS[spec.name]
        weights[spec.name] = spec.row_share / max(rows, 1.0)
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def describe_mix(*, statement_batch: int = DEFAULT_STATEMENT_BATCH) -> str:
    """The operation mix as a text table, for the command line.

    Parameters
    ----------
    statement_batch
        Accounts per statement run, which sets how often a run happens.

    Returns
    -------
    str
        One line per operation: share of changed rows, share of transactions, rows per
        transaction, tables written and what it does.
    """
    weights = operation_weights(2 * statement_batch)
    lines = [
        f"{'operation':<24}{'rows':>7}{'txns':>8}{'rows/txn':>10}  tables: what",
    ]
    for spec in MIX:
        rows = 2 * statement_batch if spec.name == "issue_statements" else EXPECTED_ROWS[spec.name]
        lines.append(
            f"{spec.name:<24}{spec.row_share:>7.0%}{weights[spec.name]:>8.1%}{rows:>10g}  "
            f"{', '.join(spec.tables)}: {spec.description}"
        )
    lines.append(
        f"(statement runs of up to {statement_batch} accounts; every write stamps "
        "CHG_TS = localtimestamp, the transaction start)"
    )
    return "\n".join(lines)


def money(cents: int) -> Decimal:
    """``12345 -> Decimal('123.45')``."""
    return Decimal(cents).scaleb(-2)


_AUDIT_INSERT = "localtimestamp, localtimestamp, %(user)s, 'A'"
_STAMP = '"CHG_TS" = localtimestamp, "CHG_USER" = %(user)s'
_PICK_SERVICE = """
    ("SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE") = (
        SELECT "SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE"
        FROM (
            SELECT c."SITE_ID", c."ACCOUNT_NO", c."SERVICE_CODE", c."OCCURRENCE",
                   row_number() OVER (ORDER BY c."SERVICE_CODE", c."OCCURRENCE") AS n,
                   count(*) OVER () AS services
            FROM {s}."CUST_SERVICE" c
            WHERE c."SITE_ID" = %(site)s AND c."ACCOUNT_NO" = %(account)s
              AND c."SVC_STATUS" = 'A' AND c."REC_STATUS" = 'A'
        ) active
        WHERE n = 1 + floor(%(pick)s::float8 * services)::int
    )"""

_TEMPLATES: dict[str, str] = {
    "post_payment": f"""
WITH paid AS (
    INSERT INTO {{s}}."PAYMENT" ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE", "AMOUNT",
        "PAY_METHOD", "PAY_STATUS", "CRT_TS", "CHG_TS", "CHG_USER", "REC_STATUS")
    SELECT a."SITE_ID", %(payment_no)s, a."ACCOUNT_NO", CURRENT_DATE,
           CASE WHEN a."AR_BALANCE" >= 1 THEN round(a."AR_BALANCE" * %(share)s::numeric, 2)
                ELSE %(amount)s::numeric END,
           %(method)s, 'P', {_AUDIT_INSERT}
    FROM {{s}}."ACCOUNT" a
    WHERE a."SITE_ID" = %(site)s AND a."ACCOUNT_NO" = %(account)s AND a."REC_STATUS" = 'A'
    RETURNING "SITE_ID", "ACCOUNT_NO", "AMOUNT"
), balance AS (
    UPDATE {{s}}."ACCOUNT" a SET "AR_BALANCE" = a."AR_BALANCE" - paid."AMOUNT", {_STAMP}
    FROM paid WHERE a."SITE_ID" = paid."SITE_ID" AND a."ACCOUNT_NO" = paid."ACCOUNT_NO"
    RETURNING 1
)
SELECT (SELECT count(*) FROM paid), (SELECT count(*) FROM balance)""",
    "reverse_payment": f"""
WITH reversed AS (
    UPDATE {{s}}."PAYMENT" SET "PAY_STATUS" = 'R', {_STAMP}
    WHERE "SITE_ID" = %(site)s AND "PAYMENT_NO" = %(payment_no)s
      AND "PAY_STATUS" = 'P' AND "REC_STATUS" = 'A'
    RETURNING "SITE_ID", "ACCOUNT_NO", "AMOUNT"
), balance AS (
    UPDATE {{s}}."ACCOUNT" a SET "AR_BALANCE" = a."AR_BALANCE" + reversed."AMOUNT", {_STAMP}
    FROM reversed
    WHERE a."SITE_ID" = reversed."SITE_ID" AND a."ACCOUNT_NO" = reversed."ACCOUNT_NO"
    RETURNING 1
)
SELECT (SELECT count(*) FROM reversed), (SELECT count(*) FROM balance)""",
    "add_service": f"""
WITH added AS (
    INSERT INTO {{s}}."CUST_SERVICE" ("SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE",
        "START_DATE", "STOP_DATE", "MONTHLY_RATE", "QUANTITY", "SVC_STATUS",
        "CRT_TS", "CHG_TS", "CHG_USER", "REC_STATUS")
    SELECT a."SITE_ID", a."ACCOUNT_NO", %(code)s,
           1 + COALESCE((SELECT max(c."OCCURRENCE") FROM {{s}}."CUST_SERVICE" c
                         WHERE c."SITE_ID" = a."SITE_ID" AND c."ACCOUNT_NO" = a."ACCOUNT_NO"
                           AND c."SERVICE_CODE" = %(code)s), 0),
           CURRENT_DATE, NULL, %(rate)s::numeric, %(quantity)s::smallint, 'A', {_AUDIT_INSERT}
    FROM {{s}}."ACCOUNT" a
    WHERE a."SITE_ID" = %(site)s AND a."ACCOUNT_NO" = %(account)s
      AND a."ACCT_STATUS" <> 'C' AND a."REC_STATUS" = 'A'
    RETURNING 1
)
SELECT count(*) FROM added""",
    "change_service": f"""
WITH changed AS (
    UPDATE {{s}}."CUST_SERVICE" SET
        "MONTHLY_RATE" = round("MONTHLY_RATE" * %(factor)s::numeric, 2),
        "QUANTITY" = CASE WHEN "SERVICE_CODE" = ANY(%(multi_unit)s::text[])
                          THEN least(4, greatest(1, "QUANTITY" + %(delta)s::int))
                          ELSE "QUANTITY" END,
        {_STAMP}
    WHERE {_PICK_SERVICE}
    RETURNING 1
)
SELECT count(*) FROM changed""",
    "disconnect_service": f"""
WITH disconnected AS (
    UPDATE {{s}}."CUST_SERVICE" SET
        "SVC_STATUS" = 'D', "STOP_DATE" = CURRENT_DATE, "REC_STATUS" = %(rec_status)s, {_STAMP}
    WHERE {_PICK_SERVICE}
    RETURNING 1
)
SELECT count(*) FROM disconnected""",
    "issue_statements": f"""
WITH picked AS (
    SELECT a."SITE_ID", a."ACCOUNT_NO", COALESCE(a."AR_BALANCE", 0) AS previous
    FROM {{s}}."ACCOUNT" a
    WHERE a."SITE_ID" = %(site)s AND a."BILL_CYCLE" = %(cycle)s AND a."ACCOUNT_NO" > %(after)s
      AND a."ACCT_STATUS" <> 'C' AND a."REC_STATUS" = 'A'
    ORDER BY a."ACCOUNT_NO"
    LIMIT %(batch)s
), billed AS (
    SELECT p."SITE_ID", p."ACCOUNT_NO", p.previous,
           COALESCE((SELECT round(sum(c."MONTHLY_RATE" * c."QUANTITY") * 1.075, 2)
                     FROM {{s}}."CUST_SERVICE" c
                     WHERE c."SITE_ID" = p."SITE_ID" AND c."ACCOUNT_NO" = p."ACCOUNT_NO"
                       AND c."SVC_STATUS" = 'A' AND c."REC_STATUS" = 'A'), 0) AS charges,
           1 + COALESCE((SELECT max(t."STMT_NO") FROM {{s}}."STATEMENT" t
                         WHERE t."SITE_ID" = p."SITE_ID" AND t."ACCOUNT_NO" = p."ACCOUNT_NO"),
                        0) AS stmt_no
    FROM picked p
), issued AS (
    INSERT INTO {{s}}."STATEMENT" ("SITE_ID", "ACCOUNT_NO", "STMT_NO", "STMT_DATE", "DUE_DATE",
        "PREV_BALANCE", "NEW_CHARGES", "AMOUNT_DUE", "CRT_TS", "CHG_TS", "CHG_USER", "REC_STATUS")
    SELECT "SITE_ID", "ACCOUNT_NO", stmt_no, CURRENT_DATE, CURRENT_DATE + 21,
           previous, charges, previous + charges, {_AUDIT_INSERT}
    FROM billed
    RETURNING "SITE_ID", "ACCOUNT_NO", "NEW_CHARGES"
), balance AS (
    UPDATE {{s}}."ACCOUNT" a
    SET "AR_BALANCE" = COALESCE(a."AR_BALANCE", 0) + issued."NEW_CHARGES", {_STAMP}
    FROM issued WHERE a."SITE_ID" = issued."SITE_ID" AND a."ACCOUNT_NO" = issued."ACCOUNT_NO"
    RETURNING 1
)
SELECT (SELECT count(*) FROM issued), (SELECT count(*) FROM balance),
       (SELECT max("ACCOUNT_NO") FROM picked)""",
    "open_account": f"""
WITH opened AS (
    INSERT INTO {{s}}."ACCOUNT" ("SITE_ID", "ACCOUNT_NO", "ACCT_NAME", "ACCT_STATUS",
        "BILL_CYCLE", "AR_BALANCE", "CREDIT_CLASS", "CRT_TS", "CHG_TS", "CHG_USER", "REC_STATUS")
    VALUES (%(site)s, %(account)s, %(name)s, 'A', %(cycle)s::smallint, 0, %(credit)s,
            {_AUDIT_INSERT})
    RETURNING "SITE_ID", "ACCOUNT_NO"
), services AS (
    INSERT INTO {{s}}."CUST_SERVICE" ("SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE",
        "START_DATE", "STOP_DATE", "MONTHLY_RATE", "QUANTITY", "SVC_STATUS",
        "CRT_TS", "CHG_TS", "CHG_USER", "REC_STATUS")
    SELECT o."SITE_ID", o."ACCOUNT_NO", v.code, v.occurrence, CURRENT_DATE, NULL, v.rate,
           v.quantity, 'A', {_AUDIT_INSERT}
    FROM opened o
    CROSS JOIN unnest(%(codes)s::text[], %(occurrences)s::smallint[], %(rates)s::numeric[],
                      %(quantities)s::smallint[]) AS v(code, occurrence, rate, quantity)
    RETURNING 1
)
SELECT (SELECT count(*) FROM opened), (SELECT count(*) FROM services)""",
    "change_account_status": f"""
WITH account AS (
    UPDATE {{s}}."ACCOUNT" SET
        "ACCT_STATUS" = CASE "ACCT_STATUS" WHEN 'A' THEN %(from_active)s
                                           ELSE %(from_suspended)s END,
        {_STAMP}
    WHERE "SITE_ID" = %(site)s AND "ACCOUNT_NO" = %(account)s
      AND "ACCT_STATUS" IN ('A', 'S') AND "REC_STATUS" = 'A'
    RETURNING "SITE_ID", "ACCOUNT_NO", "ACCT_STATUS"
), services AS (
    UPDATE {{s}}."CUST_SERVICE" c SET "SVC_STATUS" = 'D', "STOP_DATE" = CURRENT_DATE, {_STAMP}
    FROM account
    WHERE account."ACCT_STATUS" = 'C' AND c."SITE_ID" = account."SITE_ID"
      AND c."ACCOUNT_NO" = account."ACCOUNT_NO" AND c."SVC_STATUS" = 'A'
    RETURNING 1
)
SELECT (SELECT count(*) FROM account), (SELECT count(*) FROM services)""",
    "update_account_profile": f"""
WITH account AS (
    UPDATE {{s}}."ACCOUNT" SET "ACCT_NAME" = %(name)s, "CREDIT_CLASS" = %(credit)s, {_STAMP}
    WHERE "SITE_ID" = %(site)s AND "ACCOUNT_NO" = %(account)s AND "REC_STATUS" = 'A'
    RETURNING 1
)
SELECT count(*) FROM account""",
}


def operation_statements(schema: str) -> dict[str, sql.Composed]:
    """The SQL of every operation in :data:`MIX`, for tables in ``schema``.

    Each statement returns one row: rows changed in each of the operation's
    :attr:`OperationSpec.tables`, in that order (``issue_statements`` adds the last
    account number it billed).
    """
    statements: dict[str, sql.Composed] = {}
    for name, template in _TEMPLATES.items():
        statements[name] = sql.SQL(template).format(s=sql.Identifier(schema))
    return statements
