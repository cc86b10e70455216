"""The simulated biller's DDL: the catalog's columns and keys, the capture index text."""

from __future__ import annotations

import pytest

from billing_sync.config import TableMapping, load_catalog
from billing_sync.simulator.schema import TABLES, table_statements


@pytest.mark.parametrize("mapping", load_catalog("icoms").tables, ids=lambda m: m.table)
def test_tables_have_exactly_the_catalog_columns_and_key(mapping: TableMapping) -> None:
    table = TABLES[mapping.table]
    assert list(table.column_names) == [column.source for column in mapping.columns]
    assert list(table.key) == mapping.key
    required = {column.source for column in mapping.columns if not column.nullable}
    for name, definition in table.columns:
        expected = name in required or name in ("CRT_TS", "REC_STATUS")
        assert ("NOT NULL" in definition) == expected, name


def test_ddl_text_of_account() -> None:
    create, capture_index, *_ = (
        statement.as_string(None)
        for statement in table_statements(TABLES["ACCOUNT"], schema="icoms")
    )
    assert create.startswith('CREATE TABLE IF NOT EXISTS "icoms"."ACCOUNT" (')
    assert create.endswith('PRIMARY KEY ("SITE_ID", "ACCOUNT_NO"))')
    assert capture_index == (
        'CREATE INDEX IF NOT EXISTS "ACCOUNT_CHG_IX" ON "icoms"."ACCOUNT" '
        '((COALESCE("CHG_TS", "CRT_TS")), "SITE_ID", "ACCOUNT_NO")'
    )


@pytest.mark.parametrize(
    ("table", "column", "sql_type"),
    [
        ("ACCOUNT", "SITE_ID", "char(3) NOT NULL"),
        ("ACCOUNT", "ACCOUNT_NO", "char(9) NOT NULL"),
        ("ACCOUNT", "ACCT_NAME", "varchar(40)"),
        ("ACCOUNT", "BILL_CYCLE", "smallint"),
        ("ACCOUNT", "AR_BALANCE", "numeric(12,2)"),
        ("CUST_SERVICE", "SERVICE_CODE", "char(5) NOT NULL"),
        ("CUST_SERVICE", "OCCURRENCE", "smallint NOT NULL"),
        ("CUST_SERVICE", "MONTHLY_RATE", "numeric(10,2)"),
        ("CUST_SERVICE", "QUANTITY", "smallint"),
        ("STATEMENT", "STMT_NO", "integer NOT NULL"),
        ("STATEMENT", "DUE_DATE", "date"),
        ("PAYMENT", "PAYMENT_NO", "bigint NOT NULL"),
        ("PAYMENT", "PAY_METHOD", "char(2)"),
        ("PAYMENT", "CRT_TS", "timestamp(6) NOT NULL"),
        ("PAYMENT", "CHG_TS", "timestamp(6)"),
        ("PAYMENT", "CHG_USER", "varchar(10)"),
        ("PAYMENT", "REC_STATUS", "char(1) NOT NULL DEFAULT 'A'"),
    ],
)
def test_column_types(table: str, column: str, sql_type: str) -> None:
    assert dict(TABLES[table].columns)[column] == sql_type
