"""A mapping against a reflected source table (pure): what is refused, and why."""

from __future__ import annotations

from typing import Any

import pytest

from billing_sync.config import TableMapping
from billing_sync.source.reflect import SourceTable, mapping_problems, type_family

TABLE = SourceTable(
    "ACCOUNT",
    {
        "SITE_ID": "character(3)", "ACCOUNT_NO": "character(10)", "BAN": "bigint",
        "AR_BALANCE": "numeric(11,0)", "BALANCE_F": "double precision", "MEMO": "text",
        "OPEN_DATE": "integer", "DOB": "date", "DESC_E": "bytea", "CHG_DATE": "integer",
        "CHG_TIME": "integer", "CHG_TS": "timestamp(6) without time zone",
        "AMOUNT": "numeric(12,2)",
    },
    [("SITE_ID", "ACCOUNT_NO")],
)  # fmt: skip


def mapping(*extra: dict[str, Any], **table: Any) -> TableMapping:
    return TableMapping.model_validate({
        "table": "ACCOUNT", "entity": "billing_account", "key": ["SITE_ID", "ACCOUNT_NO"],
        "cursor": ["CHG_DATE", "CHG_TIME"], "cursor_format": "cyymmdd_hhmmss",
        "columns": [
            {"source": "SITE_ID", "target": "site_id", "type": "text", "converter": "trim"},
            {"source": "ACCOUNT_NO", "target": "account_number", "type": "text"},
            *extra,
        ],
        **table,
    })  # fmt: skip


def test_a_fitting_mapping_has_no_problem() -> None:
    fits = mapping(
        {"source": "BAN", "target": "ban", "type": "text"},
        {"source": "AR_BALANCE", "target": "balance", "type": "decimal(12,2)",
         "converter": {"implied_decimal": 2}},
        {"source": "BALANCE_F", "target": "balance_f", "type": "decimal(12,2)",
         "converter": {"float_money": 2}},
        {"source": "OPEN_DATE", "target": "opened", "type": "date", "converter": "cyymmdd"},
        {"source": "DOB", "target": "dob", "type": "date"},
        {"source": "DESC_E", "target": "description", "type": "text", "converter": "ebcdic"},
        {"source": "MEMO", "target": "memo", "type": "text", "protect": "redact"},
        {"source": "AMOUNT", "target": "amount", "type": "decimal(12,2)"},
        {"source": ["CHG_DATE", "CHG_TIME"], "target": "changed_at", "type": "timestamp",
         "converter": "cyymmdd_hhmmss"},
    )  # fmt: skip
    assert mapping_problems(fits, TABLE) == []
    assert TABLE.key_is_unique(["SITE_ID", "ACCOUNT_NO"])
    assert not TABLE.key_is_unique(["SITE_ID"])


@pytest.mark.parametrize(
    ("extra", "table", "problem"),
    [
        ({"source": "NOPE", "target": "x", "type": "text"}, {},
         "table ACCOUNT, column NOPE: not in the source table"),
        ({"source": "MEMO", "target": "x", "type": "decimal(12,2)",
          "converter": {"implied_decimal": 2}}, {},
         "table ACCOUNT, column MEMO: converter implied_decimal(2) cannot read a text column"),
        ({"source": "DOB", "target": "x", "type": "date", "converter": "cyymmdd"}, {},
         "table ACCOUNT, column DOB: converter cyymmdd cannot read a date column"),
        ({"source": "MEMO", "target": "x", "type": "text", "converter": "ebcdic"}, {},
         "converter ebcdic cannot read a text column"),
        ({"source": "BALANCE_F", "target": "x", "type": "decimal(12,2)"}, {},
         "target type decimal(12,2) cannot read a double precision column (use float_money)"),
        ({"source": "MEMO", "target": "x", "type": "integer"}, {},
         "target type integer cannot read a text column"),
        ({"source": "CHG_TS", "target": "x", "type": "timestamp"},
         {"cursor": "CHG_TS", "cursor_format": "timestamp", "cursor_fallback": "CRT_TS"},
         "table ACCOUNT, column CRT_TS: not in the source table"),
        ({"source": "MEMO", "target": "x", "type": "text"},
         {"cursor": "MEMO", "cursor_format": "timestamp"},
         "column MEMO: a timestamp cursor column cannot be text"),
        ({"source": "MEMO", "target": "x", "type": "text"},
         {"soft_delete": {"column": "MEMO", "values": ["D"]}, "key": ["SITE_ID", "NOPE"]},
         None),
    ],
)  # fmt: skip
def test_problems_name_table_and_column(
    extra: dict[str, Any], table: dict[str, Any], problem: str | None
) -> None:
    if problem is None:  # a key column that is not mapped fails earlier, at load
        with pytest.raises(ValueError, match="key column"):
            mapping(extra, **table)
        return
    found = mapping_problems(mapping(extra, **table), TABLE)
    assert any(problem in line for line in found), found


def test_a_missing_table() -> None:
    assert mapping_problems(mapping(), None) == ["table ACCOUNT: not in the source schema"]


@pytest.mark.parametrize(
    ("sql_type", "family"),
    [("integer", "int"), ("numeric(7,0)", "int"), ("numeric(12,2)", "numeric"),
     ("character varying(30)", "text"), ("timestamp(6) without time zone", "timestamp"),
     ("bytea", "binary"), ("real", "float"), ("date", "date"), ("uuid", "uuid"),
     ("timestamp(6) with time zone", "timestamptz"), ("interval", "interval"), ("jsonb", "json"),
     ("enum", "enum"), ("point", "other")],
)  # fmt: skip
def test_type_families(sql_type: str, family: str) -> None:
    assert type_family(sql_type) == family


@pytest.mark.parametrize(
    ("source_type", "target", "converter", "reason"),
    [
        ("numeric", "decimal(11,2)", None, "unbounded numeric has any scale and range"),
        ("numeric(11,3)", "decimal(11,2)", None, "3 decimal places, the target keeps 2"),
        ("numeric(14,2)", "decimal(12,2)", None, "values up to 999999999999.99, the target"),
        ("bigint", "integer", None, "the target holds up to 2147483647"),
        ("numeric(10,0)", "integer", None, "values up to 9999999999, the target holds"),
        ("numeric(20,0)", "bigint", None, "the target holds up to 9223372036854775807"),
        ("integer", "decimal(9,2)", None, "values up to 2147483647, the target holds"),
        ("bigint", "decimal(12,2)", {"implied_decimal": 2}, "values up to 92233720368547758.07"),
        ("numeric(9,1)", "decimal(12,2)", {"implied_decimal": 2}, "3 decimal places"),
    ],
)
def test_a_source_type_the_target_cannot_hold_exactly_is_named(
    source_type: str, target: str, converter: Any, reason: str
) -> None:
    table = SourceTable("PAYMENT", {**TABLE.columns, "AMOUNT": source_type}, TABLE.unique_keys)
    spec = {"source": "AMOUNT", "target": "amount", "type": target}
    found = mapping_problems(mapping({**spec, "converter": converter} if converter else spec),
                             table, system="icoms")  # fmt: skip
    expected = f"column icoms.ACCOUNT.AMOUNT: source type {source_type} does not fit target"
    assert [line for line in found if expected in line and reason in line], found


@pytest.mark.parametrize(
    ("source_type", "target", "converter"),
    [
        ("numeric(11,2)", "decimal(11,2)", None),
        ("numeric(9,2)", "decimal(12,2)", None),
        ("smallint", "integer", None),
        ("integer", "integer", None),
        ("numeric(9,0)", "integer", None),
        ("numeric(18,0)", "bigint", None),
        ("integer", "decimal(10,2)", {"implied_decimal": 2}),
        ("numeric", "text", None),
        ("bigint", "text", None),
    ],
)
def test_a_source_type_the_target_holds_passes(
    source_type: str, target: str, converter: Any
) -> None:
    table = SourceTable("PAYMENT", {**TABLE.columns, "AMOUNT": source_type}, TABLE.unique_keys)
    spec = {"source": "AMOUNT", "target": "amount", "type": target}
    found = mapping_problems(mapping({**spec, "converter": converter} if converter else spec),
                             table, system="icoms")  # fmt: skip
    assert found == []
