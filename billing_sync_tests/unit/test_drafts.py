"""Pure parts of catalog init, check's index advice and the type normalization of
engine-reflected tables (billing_sync.source.drafts)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from billing_sync.config import SourceCatalog
from billing_sync.source.drafts import (
    create_index_sql,
    cursor_candidates,
    draft_catalog,
    normalized_type,
    source_table,
    supporting_index,
)
from billing_sync.source.engines.types import ReflectedColumn, ReflectedTable
from billing_sync.source.reflect import type_family


@pytest.mark.parametrize(
    ("sql_type", "family", "expected"),
    [
        ("INTEGER", "int", "integer"),
        ("INTEGER(11)", "int", "integer"),
        ("TINYINT", "int", "smallint"),
        ("BIGINT(20) UNSIGNED", "int", "numeric(20,0)"),
        ("NUMBER(7, 0)", "int", "numeric(7,0)"),
        ("DECIMAL(11, 2)", "numeric", "numeric(11,2)"),
        ("NUMERIC", "numeric", "numeric"),
        ("CHAR(3)", "text", "character(3)"),
        ("VARCHAR(40)", "text", "character varying(40)"),
        ("CLOB", "text", "text"),
        ("BLOB", "binary", "bytea"),
        ("VARBINARY(255)", "binary", "bytea"),
        ("DATETIME", "timestamp", "timestamp without time zone"),
        ("DATE", "timestamp", "timestamp without time zone"),  # Oracle DATE
        ("DATE", "date", "date"),
        ("TINYINT(1)", "boolean", "boolean"),
    ],
)
def test_normalized_types_keep_their_family(sql_type: str, family: str, expected: str) -> None:
    normalized = normalized_type(ReflectedColumn("C", sql_type, family, True))
    assert normalized == expected
    # What the catalog check derives from the normalized spelling is the adapter's family.
    if family not in ("boolean",):
        assert type_family(normalized) == ("text" if family == "text" else family)


def _dialect(url: str) -> sa.Dialect:
    return make_url(url).get_dialect()()


def _icoms_like() -> ReflectedTable:
    columns = {
        name: ReflectedColumn(name, sql_type, family, nullable)
        for name, sql_type, family, nullable in (
            ("SITE_ID", "CHAR(3)", "text", False),
            ("ACCOUNT_NO", "CHAR(10)", "text", False),
            ("SSN", "CHAR(9)", "text", True),
            ("AR_BALANCE", "DECIMAL(11, 2)", "numeric", False),
            ("REMARKS", "BLOB", "binary", True),
            ("CHG_DATE", "INTEGER", "int", False),
            ("CHG_TIME", "INTEGER", "int", False),
        )
    }
    return ReflectedTable(
        name="ACCOUNT",
        columns=columns,
        primary_key=("SITE_ID", "ACCOUNT_NO"),
        unique_keys=[("SITE_ID", "ACCOUNT_NO")],
        indexes={"ACCOUNT_CHG_IX": ("CHG_DATE", "CHG_TIME", "SITE_ID", "ACCOUNT_NO")},
    )


def test_cursor_index_is_found_and_its_absence_gives_the_create_index() -> None:
    table = _icoms_like()
    assert supporting_index(table, ["CHG_DATE", "CHG_TIME"]) == "ACCOUNT_CHG_IX"
    assert supporting_index(table, ["CHG_TIME"]) is None
    assert supporting_index(table, ["SITE_ID"]) == "PRIMARY KEY"
    args = {"schema": "icoms", "table": "ACCOUNT", "cursor": ["CHG_DATE", "CHG_TIME"],
            "key": ["SITE_ID", "ACCOUNT_NO"]}  # fmt: skip
    assert create_index_sql(_dialect("mysql+pymysql://"), **args) == (  # type: ignore[arg-type]
        "CREATE INDEX `ACCOUNT_CHG_IX` ON icoms.`ACCOUNT` (`CHG_DATE`, `CHG_TIME`, `SITE_ID`,"
        " `ACCOUNT_NO`)"
    )
    assert create_index_sql(_dialect("postgresql+psycopg://"), **args).startswith(  # type: ignore[arg-type]
        'CREATE INDEX "ACCOUNT_CHG_IX" ON icoms."ACCOUNT" ("CHG_DATE", "CHG_TIME"'
    )
    assert "ON icoms.account (chg_ts, ban)" in create_index_sql(
        _dialect("oracle+oracledb://"),
        schema="icoms",
        table="account",
        cursor=["chg_ts"],
        key=["ban"],
    )


def test_draft_catalog_loads_and_flags_what_needs_a_decision() -> None:
    table = _icoms_like()
    assert [c.columns for c in cursor_candidates(table)] == [("CHG_DATE", "CHG_TIME")]
    text = draft_catalog("biller", "icoms", [table], timezone="America/Chicago", engine="mysql")
    assert "cursor: [CHG_DATE, CHG_TIME]  # index ACCOUNT_CHG_IX" in text
    assert "cursor_format: cyymmdd_hhmmss" in text
    ssn = next(line for line in text.splitlines() if "source: SSN" in line)
    assert "SENSITIVE?" in ssn
    assert "ebcdic or latin1" in next(line for line in text.splitlines() if "REMARKS" in line)
    catalog = SourceCatalog.model_validate(yaml.safe_load(text))
    (mapping,) = catalog.tables
    assert mapping.key == ["SITE_ID", "ACCOUNT_NO"]
    assert mapping.cursor_format == "cyymmdd_hhmmss"
    assert source_table(table).key_is_unique(["SITE_ID", "ACCOUNT_NO"])
    assert source_table(table).columns["AR_BALANCE"] == "numeric(11,2)"
