"""normalize() with converters, constants, protection and a composite cursor: the frame,
and the bad values as failures that quarantine their rows without their protected values."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest

from billing_sync.config import TableMapping
from billing_sync.source.schema import source_schema
from billing_sync.transform.normalize import (
    CONVERT_EXPECTATION,
    normalize_batch,
    normalized_source_key,
)
from billing_sync.transform.protect import REDACTED, Protector, hmac_token
from billing_sync.validate.quarantine import row_problems
from billing_sync.validate.report import ValidationReport, with_conversion_failures

SYNCED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ACCOUNT = TableMapping.model_validate(
    {
        "table": "ACCOUNT",
        "entity": "billing_account",
        "key": ["SITE_ID", "ACCOUNT_NO"],
        "cursor": ["CHG_DATE", "CHG_TIME"],
        "cursor_format": "cyymmdd_hhmmss",
        "soft_delete": {"column": "REC_STATUS", "values": ["D"]},
        "drop": ["PIN"],
        "columns": [
            {"source": "SITE_ID", "target": "site_id", "type": "text", "converter": "trim"},
            {"source": "ACCOUNT_NO", "target": "account_number", "type": "text",
             "converter": "trim"},
            {"constant": None, "target": "customer_id", "type": "text"},
            {"source": "ACCT_STATUS", "target": "status", "type": "text",
             "converter": {"lookup": {"A": "active", "C": "closed"}}},
            {"source": "AR_BALANCE", "target": "balance", "type": "decimal(12,2)",
             "converter": {"implied_decimal": 2}},
            {"source": "DOB", "target": "birth_date", "type": "date", "converter": "cyymmdd"},
            {"source": "SSN", "target": "national_id_token", "type": "text", "protect": "hmac"},
            {"source": "CARD_NO", "target": "card_last4", "type": "text", "protect": "last4"},
            {"source": "MEMO", "target": "memo", "type": "text", "protect": "redact"},
            {"source": ["CHG_DATE", "CHG_TIME"], "target": "changed_at", "type": "timestamp",
             "converter": "cyymmdd_hhmmss"},
            {"source": "REC_STATUS", "target": "record_status", "type": "text",
             "converter": "trim"},
        ],
    }
)  # fmt: skip
KEY = b"test-key"


def account(no: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "SITE_ID": "001", "ACCOUNT_NO": f"{no:<10}", "ACCT_STATUS": "A", "AR_BALANCE": 12345,
        "DOB": 801231, "SSN": "123-45-6789", "CARD_NO": "4111111111111111",
        "MEMO": "called re card 4111 1111 1111 1111", "CHG_DATE": 1261125, "CHG_TIME": 70509,
        "REC_STATUS": "A ", "_cursor_date": 1261125, "_cursor_time": 70509,
    }  # fmt: skip
    row.update(values)
    return row


def batch(*rows: dict[str, object]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=source_schema(ACCOUNT))


def test_the_fetched_schema_follows_the_converters_and_the_raw_cursor() -> None:
    schema = source_schema(ACCOUNT)
    assert schema.names == [
        "SITE_ID", "ACCOUNT_NO", "ACCT_STATUS", "AR_BALANCE", "DOB", "SSN", "CARD_NO", "MEMO",
        "CHG_DATE", "CHG_TIME", "REC_STATUS", "_cursor_date", "_cursor_time",
    ]  # fmt: skip
    assert schema.field("AR_BALANCE").type == pa.int64()
    reflected = ACCOUNT.model_copy(update={"source_types": {"AR_BALANCE": "numeric(11,0)"}})
    assert source_schema(reflected).field("AR_BALANCE").type == pa.decimal128(11, 0)


def test_good_rows_convert_protect_and_carry_lineage() -> None:
    result = normalize_batch(
        batch(account("12345"), account("777", REC_STATUS="D ")),
        ACCOUNT, system="icoms", synced_at=SYNCED, protector=Protector(KEY),
    )  # fmt: skip
    assert result.failures == []
    frame = result.frame
    first = frame.row(0, named=True)
    assert first["site_id"] == "001" and first["account_number"] == "12345"
    assert first["customer_id"] is None
    assert first["status"] == "active"
    assert first["balance"] == Decimal("123.45")
    assert first["birth_date"] == date(1980, 12, 31)
    assert first["national_id_token"] == hmac_token(KEY, "123-45-6789")
    assert first["card_last4"] == "1111"
    assert first["memo"] == f"called re card {REDACTED}"
    assert first["changed_at"] == datetime(2026, 11, 25, 7, 5, 9, tzinfo=UTC)
    assert first["_source_version"] == datetime(2026, 11, 25, 7, 5, 9)
    assert first["_source_key"] == "001|12345"
    assert frame["_is_deleted"].to_list() == [False, True]  # "D " is the code "D"
    keys = pl.from_arrow(batch(account("12345"))).select(normalized_source_key(ACCOUNT))
    assert keys.to_series().to_list() == ["001|12345"]  # what the lookback compares


def test_bad_values_become_null_and_failures_without_protected_values() -> None:
    rows = batch(
        account("1"),
        account("2", DOB=1250231, ACCT_STATUS="X"),
        account("3", CHG_TIME=246000, _cursor_time=246000),
        account("2", DOB=1250231, ACCT_STATUS="X", CHG_TIME=70510, _cursor_time=70510),
    )
    result = normalize_batch(
        rows, ACCOUNT, system="icoms", synced_at=SYNCED, protector=Protector(KEY)
    )
    frame = result.frame
    # the newest version of 001|2 kept; 001|3's odd stamp sorts as 23:59:59 (a floor)
    assert frame["_source_key"].to_list() == ["001|1", "001|2", "001|3"]
    by_column = {failure.column: failure for failure in result.failures}
    assert set(by_column) == {"status", "birth_date", "changed_at"}
    dob = by_column["birth_date"]
    assert dob.expectation == CONVERT_EXPECTATION
    assert dob.row_positions == (1,) and dob.row_values == ("1250231",)
    assert dob.kwargs == {"table": "ACCOUNT", "source": "DOB", "converter": "cyymmdd",
                          "reason": "not a CYYMMDD date"}  # fmt: skip
    assert frame["birth_date"][1] is None and frame["status"][1] is None
    assert by_column["changed_at"].row_values == ("1261125 246000",)
    assert by_column["changed_at"].row_positions == (2,)
    report = with_conversion_failures(
        ValidationReport(entity="billing_account", success=True, rows=3, seconds=0.0),
        result.failures,
    )
    assert not report.success
    problems, whole = row_problems(frame, report)
    assert whole == []
    assert sorted(problems) == [1, 2]
    assert {(p.column, p.converter, p.reason, p.value) for p in problems[1]} == {
        ("status", "lookup", "unknown code", "X"),
        ("birth_date", "cyymmdd", "not a CYYMMDD date", "1250231"),
    }
    assert problems[1][0].as_json()["converter"] in ("lookup", "cyymmdd")


def test_a_protected_column_that_fails_to_convert_records_no_value() -> None:
    mapping = ACCOUNT.model_copy(
        update={"columns": [
            *ACCOUNT.columns[:-1],
            ACCOUNT.columns[-1].model_copy(update={"converter": None}),
        ]}
    )  # fmt: skip
    secret = TableMapping.model_validate(
        {**mapping.model_dump(exclude={"source_types"}), "columns": [
            *[c.model_dump(exclude_unset=True) for c in mapping.columns if c.target != "memo"],
            {"source": "MEMO", "target": "memo", "type": "text",
             "converter": {"lookup": {"OK": "ok"}}, "protect": "redact"},
        ]}
    )  # fmt: skip
    result = normalize_batch(
        batch(account("1", MEMO="ssn 123-45-6789")), secret, system="icoms",
        synced_at=SYNCED, protector=Protector(KEY),
    )  # fmt: skip
    (failure,) = result.failures
    assert failure.column == "memo"
    assert failure.row_values == (None,) and failure.sample_values == [None]
    assert "123-45-6789" not in repr(result.failures)


def test_hmac_without_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match="BILLING_SYNC_HMAC_KEY"):
        normalize_batch(batch(account("1")), ACCOUNT, system="icoms", synced_at=SYNCED)
