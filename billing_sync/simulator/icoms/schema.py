"""DDL of the simulated ICOMS biller (DB2 on AS/400 heritage): 14 tables in PostgreSQL.

Identifiers are upper case and quoted, as DB2 reports them. Keys are led by ``SITE_ID``
and padded ``CHAR``; dates are ``CYYMMDD`` integers (0 = none, 9999999 = open-ended),
times ``HHMMSS`` integers. Some money is implied-decimal integers (cents: ``SERVICE_CODE.RATE``,
``WO_LINE.LINE_CHARGE``, ``LEDGER.TRAN_AMT``, ``ADJUSTMENT.ADJ_AMT``,
``USAGE_EVENT.CHARGE_AMT``), the rest ``numeric``. ``SERVICE_CODE.SVC_DESC`` and
``WORK_ORDER.REMARKS`` are EBCDIC (cp037) bytes from the AS/400 files, ``PREMISE.ADDR_LINE``
Latin-1 bytes from an old address system. ``ACCOUNT.PIN`` and ``PAYMENT.CVV`` hold what
must never be read; ``ACCOUNT.SSN`` and ``PAYMENT.CARD_NO`` (a legacy full card number)
what must never land in clear.

Every table ends with the audit columns ``CRT_DATE``, ``CRT_TIME`` (insert),
``CHG_DATE``, ``CHG_TIME`` (insert and every update; see :mod:`~billing_sync.simulator.clock`),
``CHG_USER`` (a user profile; NULL or empty on rows some batch jobs wrote) and
``REC_STATUS`` (``'D'`` marks a soft delete), and has a capture index on
``(CHG_DATE, CHG_TIME, key...)``. No triggers.
"""

from __future__ import annotations

from typing import Any

import psycopg

from billing_sync.simulator.tables import TableDef, create_tables

SCHEMA = "icoms"

AUDIT: tuple[tuple[str, str], ...] = (
    ("CRT_DATE", "integer NOT NULL"),
    ("CRT_TIME", "integer NOT NULL"),
    ("CHG_DATE", "integer NOT NULL"),
    ("CHG_TIME", "integer NOT NULL"),
    ("CHG_USER", "varchar(10)"),
    ("REC_STATUS", "char(1) NOT NULL DEFAULT 'A'"),
)
CURSOR = ('"CHG_DATE"', '"CHG_TIME"')
SITE_ID = ("SITE_ID", "char(3) NOT NULL")
ACCOUNT_NO = ("ACCOUNT_NO", "char(10) NOT NULL")


def _table(
    name: str,
    columns: tuple[tuple[str, str], ...],
    key: tuple[str, ...],
    extra_indexes: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> TableDef:
    return TableDef(name, (*columns, *AUDIT), key, CURSOR, extra_indexes)


TABLES: dict[str, TableDef] = {
    table.name: table
    for table in (
        _table(
            "SITE",
            (
                SITE_ID,
                ("SITE_NAME", "char(30)"),
                ("STATE_CD", "char(2)"),
                ("TIME_ZONE", "char(20)"),
            ),
            ("SITE_ID",),
        ),
        _table(
            "PREMISE",
            (
                SITE_ID,
                ("PREMISE_ID", "char(10) NOT NULL"),
                ("ADDR_LINE", "bytea"),
                ("CITY", "char(20)"),
                ("STATE_CD", "char(2)"),
                ("ZIP_CD", "char(5)"),
                ("DWELLING_TYPE", "char(1)"),
                ("NODE_ID", "char(6)"),
            ),
            ("SITE_ID", "PREMISE_ID"),
        ),
        _table(
            "ACCOUNT",
            (
                SITE_ID,
                ACCOUNT_NO,
                ("PARENT_ACCT", "char(10)"),
                ("PREMISE_ID", "char(10)"),
                ("ACCT_NAME", "varchar(40)"),
                ("ACCT_TYPE", "char(1) NOT NULL"),
                ("SSN", "char(9)"),
                ("DOB", "integer NOT NULL DEFAULT 0"),
                ("ACCT_STATUS", "char(1) NOT NULL"),
                ("BILL_CYCLE", "smallint NOT NULL"),
                ("AR_BALANCE", "numeric(11,2) NOT NULL"),
                ("CREDIT_CLASS", "char(1)"),
                ("PIN", "char(4)"),
                ("OPEN_DATE", "integer NOT NULL"),
            ),
            ("SITE_ID", "ACCOUNT_NO"),
            # The statement run reads accounts by cycle.
            extra_indexes=(("ACCOUNT_CYCLE_IX", ("SITE_ID", "BILL_CYCLE", "ACCOUNT_NO")),),
        ),
        _table(
            "SERVICE_CODE",
            (
                SITE_ID,
                ("SERVICE_CODE", "char(5) NOT NULL"),
                ("SVC_DESC", "bytea"),
                ("CATEGORY", "char(1) NOT NULL"),
                ("RATE", "integer NOT NULL"),
                ("EFF_DATE", "integer NOT NULL"),
            ),
            ("SITE_ID", "SERVICE_CODE"),
        ),
        _table(
            "CUST_SERVICE",
            (
                SITE_ID,
                ACCOUNT_NO,
                ("SERVICE_CODE", "char(5) NOT NULL"),
                ("OCCURRENCE", "smallint NOT NULL"),
                ("START_DATE", "integer NOT NULL"),
                ("STOP_DATE", "integer NOT NULL DEFAULT 9999999"),
                ("MONTHLY_RATE", "numeric(9,2)"),
                ("QUANTITY", "smallint"),
                ("SVC_STATUS", "char(1) NOT NULL"),
            ),
            ("SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE"),
        ),
        _table(
            "EQUIPMENT",
            (
                SITE_ID,
                ("SERIAL_NO", "char(12) NOT NULL"),
                ("ACCOUNT_NO", "char(10)"),
                ("EQUIP_TYPE", "char(4) NOT NULL"),
                ("MAC_ADDR", "char(17)"),
                ("MODEL", "char(12)"),
                ("EQ_STATUS", "char(1) NOT NULL"),
                ("INSTALL_DATE", "integer NOT NULL DEFAULT 0"),
                ("REMOVE_DATE", "integer NOT NULL DEFAULT 0"),
            ),
            ("SITE_ID", "SERIAL_NO"),
            extra_indexes=(("EQUIPMENT_ACCT_IX", ("SITE_ID", "ACCOUNT_NO")),),
        ),
        _table(
            "WORK_ORDER",
            (
                SITE_ID,
                ("WO_NO", "integer NOT NULL"),
                ACCOUNT_NO,
                ("WO_TYPE", "char(2) NOT NULL"),
                ("WO_STATUS", "char(1) NOT NULL"),
                ("SCHED_DATE", "integer NOT NULL"),
                ("COMPLETE_DATE", "integer NOT NULL DEFAULT 0"),
                ("TECH_ID", "char(5)"),
                ("REMARKS", "bytea"),
            ),
            ("SITE_ID", "WO_NO"),
        ),
        _table(
            "WO_LINE",
            (
                SITE_ID,
                ("WO_NO", "integer NOT NULL"),
                ("LINE_NO", "smallint NOT NULL"),
                ("SERVICE_CODE", "char(5)"),
                ("LINE_ACTION", "char(1) NOT NULL"),
                ("SERIAL_NO", "char(12)"),
                ("LINE_CHARGE", "integer NOT NULL DEFAULT 0"),
            ),
            ("SITE_ID", "WO_NO", "LINE_NO"),
        ),
        _table(
            "STATEMENT",
            (
                SITE_ID,
                ACCOUNT_NO,
                ("STMT_NO", "integer NOT NULL"),
                ("STMT_DATE", "integer NOT NULL"),
                ("DUE_DATE", "integer NOT NULL"),
                ("PREV_BALANCE", "numeric(11,2) NOT NULL"),
                ("NEW_CHARGES", "numeric(11,2) NOT NULL"),
                ("AMOUNT_DUE", "numeric(11,2) NOT NULL"),
            ),
            ("SITE_ID", "ACCOUNT_NO", "STMT_NO"),
        ),
        _table(
            "LEDGER",
            (
                SITE_ID,
                ("TRAN_NO", "bigint NOT NULL"),
                ACCOUNT_NO,
                ("STMT_NO", "integer NOT NULL DEFAULT 0"),
                ("TRAN_TYPE", "char(3) NOT NULL"),
                ("SERVICE_CODE", "char(5)"),
                ("TRAN_DATE", "integer NOT NULL"),
                ("TRAN_AMT", "integer NOT NULL"),
                ("TRAN_DESC", "char(30)"),
            ),
            ("SITE_ID", "TRAN_NO"),
            extra_indexes=(("LEDGER_ACCT_IX", ("SITE_ID", "ACCOUNT_NO")),),
        ),
        _table(
            "PAYMENT",
            (
                SITE_ID,
                ("PAYMENT_NO", "bigint NOT NULL"),
                ACCOUNT_NO,
                ("PAY_DATE", "integer NOT NULL"),
                ("AMOUNT", "numeric(11,2) NOT NULL"),
                ("PAY_METHOD", "char(2) NOT NULL"),
                ("PAY_STATUS", "char(1) NOT NULL"),
                ("CARD_NO", "varchar(19)"),
                ("CARD_EXP", "char(4)"),
                ("CVV", "char(3)"),
            ),
            ("SITE_ID", "PAYMENT_NO"),
        ),
        _table(
            "ADJUSTMENT",
            (
                SITE_ID,
                ("ADJ_NO", "bigint NOT NULL"),
                ACCOUNT_NO,
                ("ADJ_DATE", "integer NOT NULL"),
                ("ADJ_AMT", "integer NOT NULL"),
                ("REASON_CD", "char(4) NOT NULL"),
                ("MEMO", "varchar(120)"),
            ),
            ("SITE_ID", "ADJ_NO"),
        ),
        _table(
            "USAGE_EVENT",
            (
                SITE_ID,
                ("EVENT_NO", "bigint NOT NULL"),
                ACCOUNT_NO,
                ("EVENT_TYPE", "char(1) NOT NULL"),
                ("EVENT_DATE", "integer NOT NULL"),
                ("EVENT_TIME", "integer NOT NULL"),
                ("DURATION_SEC", "integer NOT NULL"),
                ("EVENT_DESC", "char(40)"),
                ("CHARGE_AMT", "integer NOT NULL"),
            ),
            ("SITE_ID", "EVENT_NO"),
        ),
        _table(
            "COLL_ACTIVITY",
            (
                SITE_ID,
                ACCOUNT_NO,
                ("COLL_SEQ", "smallint NOT NULL"),
                ("STEP_CODE", "char(2) NOT NULL"),
                ("STEP_DATE", "integer NOT NULL"),
                ("PAST_DUE", "numeric(11,2) NOT NULL"),
            ),
            ("SITE_ID", "ACCOUNT_NO", "COLL_SEQ"),
        ),
    )
}
"""The tables in creation order, by name; columns in ``COPY`` order."""


def create_schema(conn: psycopg.Connection[Any], *, schema: str = SCHEMA) -> None:
    """Create the schema, the 14 tables and their indexes unless they exist.

    Parameters
    ----------
    conn
        An open connection to the source database.
    schema
        Name of the PostgreSQL schema (the catalog's ``schema``).
    """
    create_tables(conn, TABLES, schema=schema)
