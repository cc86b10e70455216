"""DDL of the simulated Amdocs-style biller (Oracle heritage): 9 tables in PostgreSQL.

Oracle types become their PostgreSQL look-alikes: ``NUMBER(9)`` -> ``bigint``/``integer``,
``VARCHAR2`` -> ``varchar``, ``CHAR`` -> ``char``, ``DATE`` used as a timestamp ->
``timestamp(0)`` (second precision), a pure calendar ``DATE`` -> ``date``, ``FLOAT`` ->
``double precision`` (money in ``CHARGE``, ``PAYMENT``, ``ADJUSTMENT``, ``USAGE`` and the
account's ``AR_BALANCE``, as some Amdocs installations keep it); ``BILL`` amounts are
``NUMBER(12,2)``, what the catalog's ``decimal(12,2)`` holds (``check`` refuses a target
narrower than its source). ``BAN`` (billing account
number) is unique system-wide. ``BILLING_ACCOUNT.ACC_PASSWORD`` must never be read;
``CUSTOMER.SSN`` and ``PAYMENT.CR_CARD_NO`` never land in clear.

Every table ends with ``SYS_CREATION_DATE`` (insert), ``SYS_UPDATE_DATE`` (every later
write, NULL until then), ``OPERATOR_ID``, and has a capture index on
``(COALESCE(SYS_UPDATE_DATE, SYS_CREATION_DATE), key...)``. No triggers.
"""

from __future__ import annotations

from typing import Any

import psycopg

from billing_sync.simulator.tables import TableDef, create_tables

SCHEMA = "amdocs"

AUDIT: tuple[tuple[str, str], ...] = (
    ("SYS_CREATION_DATE", "timestamp(0) NOT NULL"),
    ("SYS_UPDATE_DATE", "timestamp(0)"),
    ("OPERATOR_ID", "integer"),
)
CURSOR = ('COALESCE("SYS_UPDATE_DATE", "SYS_CREATION_DATE")',)
BAN = ("BAN", "bigint NOT NULL")


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
            "CUSTOMER",
            (
                ("CUSTOMER_ID", "bigint NOT NULL"),
                ("CUSTOMER_TYPE", "char(1) NOT NULL"),
                ("FIRST_NAME", "varchar(30)"),
                ("LAST_NAME", "varchar(60)"),
                ("SSN", "varchar(11)"),
                ("BIRTH_DATE", "date"),
                ("CUSTOMER_SINCE", "date NOT NULL"),
            ),
            ("CUSTOMER_ID",),
        ),
        _table(
            "BILLING_ACCOUNT",
            (
                BAN,
                ("CUSTOMER_ID", "bigint NOT NULL"),
                ("PARENT_BAN", "bigint"),
                ("BAN_NAME", "varchar(60)"),
                ("ACCOUNT_TYPE", "char(1) NOT NULL"),
                ("BAN_STATUS", "char(1) NOT NULL"),
                ("STATUS_LAST_DATE", "date"),
                ("COL_DELINQ_STATUS", "char(1)"),
                ("BILL_CYCLE", "smallint NOT NULL"),
                ("AR_BALANCE", "double precision NOT NULL"),
                ("CREDIT_CLASS", "char(1)"),
                ("ACC_PASSWORD", "varchar(20)"),
                ("START_SERVICE_DATE", "date NOT NULL"),
            ),
            ("BAN",),
            extra_indexes=(("BILLING_ACCOUNT_CYCLE_IX", ("BILL_CYCLE", "BAN")),),
        ),
        _table(
            "SUBSCRIBER",
            (
                ("SUBSCRIBER_NO", "varchar(20) NOT NULL"),
                BAN,
                ("SUB_STATUS", "char(1) NOT NULL"),
                ("DEVICE_MODEL", "varchar(30)"),
                ("INIT_ACTIVATION_DATE", "date NOT NULL"),
                ("CANCEL_DATE", "date"),
            ),
            ("SUBSCRIBER_NO",),
            extra_indexes=(("SUBSCRIBER_BAN_IX", ("BAN",)),),
        ),
        _table(
            "SERVICE_AGREEMENT",
            (
                ("SUBSCRIBER_NO", "varchar(20) NOT NULL"),
                ("SOC", "char(9) NOT NULL"),
                ("SOC_SEQ_NO", "integer NOT NULL"),
                BAN,
                ("SERVICE_TYPE", "char(1) NOT NULL"),
                ("EFFECTIVE_DATE", "date NOT NULL"),
                ("EXPIRATION_DATE", "date"),
                ("SOC_RATE", "double precision NOT NULL"),
                ("SOC_STATUS", "char(1) NOT NULL"),
            ),
            ("SUBSCRIBER_NO", "SOC", "SOC_SEQ_NO"),
            extra_indexes=(("SERVICE_AGREEMENT_BAN_IX", ("BAN",)),),
        ),
        _table(
            "BILL",
            (
                BAN,
                ("BILL_SEQ_NO", "integer NOT NULL"),
                ("CYCLE_CODE", "smallint NOT NULL"),
                ("BILL_DATE", "date NOT NULL"),
                ("DUE_DATE", "date NOT NULL"),
                ("PREV_BALANCE_AMT", "numeric(12,2) NOT NULL"),
                ("CUR_CHARGES_AMT", "numeric(12,2) NOT NULL"),
                ("TOTAL_DUE_AMT", "numeric(12,2) NOT NULL"),
            ),
            ("BAN", "BILL_SEQ_NO"),
        ),
        _table(
            "CHARGE",
            (
                ("ENT_SEQ_NO", "bigint NOT NULL"),
                BAN,
                ("SUBSCRIBER_NO", "varchar(20)"),
                ("BILL_SEQ_NO", "integer"),
                ("CHARGE_TYPE", "char(1) NOT NULL"),
                ("FEATURE_CODE", "char(9)"),
                ("CHG_CREATION_DATE", "date NOT NULL"),
                ("AMOUNT", "double precision NOT NULL"),
                ("CHARGE_DESC", "varchar(40)"),
            ),
            ("ENT_SEQ_NO",),
        ),
        _table(
            "PAYMENT",
            (
                ("ENT_SEQ_NO", "bigint NOT NULL"),
                BAN,
                ("DEPOSIT_DATE", "date NOT NULL"),
                ("ACTV_AMT", "double precision NOT NULL"),
                ("PYM_METHOD", "char(2) NOT NULL"),
                ("PYM_STATUS", "char(1) NOT NULL"),
                ("CR_CARD_NO", "varchar(19)"),
            ),
            ("ENT_SEQ_NO",),
        ),
        _table(
            "ADJUSTMENT",
            (
                ("ENT_SEQ_NO", "bigint NOT NULL"),
                BAN,
                ("ACTV_DATE", "date NOT NULL"),
                ("ACTV_AMT", "double precision NOT NULL"),
                ("ACTV_REASON_CODE", "varchar(6) NOT NULL"),
                ("MEMO_TEXT", "varchar(240)"),
            ),
            ("ENT_SEQ_NO",),
        ),
        _table(
            "USAGE",
            (
                ("EVENT_ID", "bigint NOT NULL"),
                BAN,
                ("SUBSCRIBER_NO", "varchar(20) NOT NULL"),
                ("CALL_TYPE", "char(1) NOT NULL"),
                ("CHANNEL_SEIZURE_DT", "timestamp(0) NOT NULL"),
                ("EVENT_UNITS", "integer NOT NULL"),
                ("OTHER_PARTY", "varchar(20)"),
                ("CHARGE_AMT", "double precision NOT NULL"),
            ),
            ("EVENT_ID",),
        ),
    )
}
"""The tables in creation order, by name; columns in ``COPY`` order."""


def create_schema(conn: psycopg.Connection[Any], *, schema: str = SCHEMA) -> None:
    """Create the schema, the 9 tables and their indexes unless they exist."""
    create_tables(conn, TABLES, schema=schema)
