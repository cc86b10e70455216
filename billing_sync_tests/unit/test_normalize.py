"""Source rows to normalized entities (Polars), compared with assert_frame_equal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pyarrow as pa
import yaml
from polars.testing import assert_frame_equal

from billing_sync.config import TableMapping
from billing_sync.source.schema import source_schema
from billing_sync.transform.normalize import normalize

# A timestamp-cursor mapping, as an ICOMS PAYMENT once was: this file tests normalize, not
# the catalog (the catalog's own mappings are tested with their converters elsewhere).
PAYMENT = TableMapping.model_validate(
    yaml.safe_load(
        """
table: PAYMENT
entity: payment
key: [SITE_ID, PAYMENT_NO]
cursor: CHG_TS
cursor_fallback: CRT_TS
soft_delete: {column: REC_STATUS, values: ["D"]}
columns:
  - {source: SITE_ID, target: site_id, type: text, nullable: false}
  - {source: PAYMENT_NO, target: payment_number, type: bigint, nullable: false}
  - {source: ACCOUNT_NO, target: account_number, type: text, nullable: false}
  - {source: PAY_DATE, target: payment_date, type: date}
  - {source: AMOUNT, target: amount, type: "decimal(12,2)"}
  - {source: PAY_METHOD, target: method, type: text}
  - {source: PAY_STATUS, target: status, type: text}
  - {source: CRT_TS, target: created_at, type: timestamp}
  - {source: CHG_TS, target: changed_at, type: timestamp}
  - {source: CHG_USER, target: changed_by, type: text}
  - {source: REC_STATUS, target: record_status, type: text}
"""
    )
)
SYNCED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 25, 11, 0, 0, 1)
T2 = datetime(2026, 11, 25, 11, 0, 0, 2)


def payment_rows(rows: list[dict[str, object]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=source_schema(PAYMENT))


def row(
    no: int, *, ts: datetime, amount: str = "10.00", rec: str = "A", name_site: str = "001"
) -> dict[str, object]:
    return {
        "SITE_ID": name_site,
        "PAYMENT_NO": no,
        "ACCOUNT_NO": "000000042",
        "PAY_DATE": date(2026, 11, 25),
        "AMOUNT": Decimal(amount),
        "PAY_METHOD": "CC",
        "PAY_STATUS": "P",
        "CRT_TS": T1,
        "CHG_TS": ts,
        "CHG_USER": "",
        "REC_STATUS": rec,
        "_cursor_ts": ts,
    }


def test_payment_rows_are_renamed_typed_and_carry_lineage() -> None:
    frame = normalize(
        payment_rows([row(1, ts=T1), row(2, ts=T2, rec="D")]),
        PAYMENT,
        system="icoms",
        synced_at=SYNCED,
    )
    expected = pl.DataFrame(
        {
            "site_id": ["001", "001"],
            "payment_number": [1, 2],
            "account_number": ["000000042"] * 2,
            "payment_date": [date(2026, 11, 25)] * 2,
            "amount": [Decimal("10.00")] * 2,
            "method": ["CC"] * 2,
            "status": ["P"] * 2,
            "created_at": [T1] * 2,
            "changed_at": [T1, T2],
            "changed_by": ["", ""],
            "record_status": ["A", "D"],
            "_source_system": ["icoms"] * 2,
            "_source_key": ["001|1", "001|2"],
            "_source_version": [T1, T2],
            "_is_deleted": [False, True],
            "_synced_at": [SYNCED] * 2,
        },
        schema_overrides={
            "payment_number": pl.Int64,
            "amount": pl.Decimal(12, 2),
            "created_at": pl.Datetime("us", "UTC"),
            "changed_at": pl.Datetime("us", "UTC"),
            "_source_version": pl.Datetime("us"),
            "_synced_at": pl.Datetime("us", "UTC"),
        },
    )
    assert_frame_equal(frame.drop("_row_hash"), expected)
    assert frame.schema["_row_hash"] == pl.Int64


def test_newest_version_of_a_key_wins() -> None:
    frame = normalize(
        payment_rows([row(1, ts=T2, amount="20.00"), row(1, ts=T1, amount="10.00")]),
        PAYMENT,
        system="icoms",
        synced_at=SYNCED,
    )
    assert frame.select("_source_key", "amount").rows() == [("001|1", Decimal("20.00"))]


def test_row_hash_tells_null_from_empty_and_sees_every_change() -> None:
    base = row(1, ts=T1)
    variants = [base, {**base, "CHG_USER": None}, {**base, "AMOUNT": Decimal("10.01")}]
    hashes = {
        normalize(payment_rows([v]), PAYMENT, system="icoms", synced_at=SYNCED)["_row_hash"][0]
        for v in variants
    }
    assert len(hashes) == 3


def test_empty_batch_keeps_the_schema() -> None:
    frame = normalize(payment_rows([]), PAYMENT, system="icoms", synced_at=SYNCED)
    assert frame.height == 0
    assert frame.columns[:2] == ["site_id", "payment_number"]
    assert "_source_key" in frame.columns
