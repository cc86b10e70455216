"""The engine-neutral row hash contract (reconcile/row_hash.py): the canonical encoding is
injective, and the portable sides compile for every engine. The engines' SQL is checked
against this reference live (MariaDB, PostgreSQL: integration/test_mariadb_engine.py)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_sync.config import TableMapping
from billing_sync.reconcile import portable
from billing_sync.reconcile.hashing import (
    KeyRange,
    build_boundaries,
    build_hashes_by_key,
    build_leaf_query,
    build_range_aggregate,
)
from billing_sync.reconcile.row_hash import (
    CANONICAL,
    canonical_value,
    row_hash,
    row_text,
    split_row_text,
)
from billing_sync.source.engines import adapter_for

texts = st.one_of(st.none(), st.text(alphabet=st.sampled_from("a|\\N ßé\t"), max_size=6))
TYPES = ["text", "integer", "decimal(9,2)", "date", "timestamp", "boolean", "text"]


def _normal(value: Any, kind: str) -> Any:
    """What the contract keeps of a value: text right-trimmed, empty as NULL."""
    if kind == "text" and value is not None:
        value = value.rstrip(" ")
        return value or None
    return value


rows = st.tuples(
    texts,
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    st.one_of(st.none(), st.integers(-(10**9), 10**9).map(lambda c: Decimal(c).scaleb(-2))),
    st.one_of(st.none(), st.dates(date(1, 1, 1), date(9999, 12, 31))),
    st.one_of(st.none(), st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31))),
    st.one_of(st.none(), st.booleans()),
    texts,
)


@given(parts=st.lists(texts, min_size=1, max_size=5))
def test_a_joined_text_splits_back_into_its_parts(parts: list[str | None]) -> None:
    joined = row_text(parts, ["text"] * len(parts))
    assert split_row_text(joined) == [_normal(part, "text") for part in parts]


@given(first=rows, second=rows)
def test_two_rows_share_a_text_only_when_their_values_are_equal(
    first: tuple[Any, ...], second: tuple[Any, ...]
) -> None:
    same = [_normal(v, k) for v, k in zip(first, TYPES, strict=True)] == [
        _normal(v, k) for v, k in zip(second, TYPES, strict=True)
    ]
    assert (row_text(first, TYPES) == row_text(second, TYPES)) is same


@given(row=rows)
def test_the_hash_is_a_non_negative_60_bit_integer(row: tuple[Any, ...]) -> None:
    assert 0 <= row_hash(row, TYPES) < 2**60


def test_the_texts_of_edge_values() -> None:
    assert row_text(["a|b", "\\N", None, ""], ["text"] * 4) == "a\\|b|\\\\N|\\N|\\N"
    assert canonical_value(datetime(1970, 1, 1) - timedelta(microseconds=1), "timestamp") == "-1"
    assert canonical_value(date(1999, 12, 31), "date") == "-1"
    assert canonical_value(Decimal("-0.001"), "decimal(9,2)") == "0.00"
    assert canonical_value(Decimal("2.345"), "decimal(9,2)") == "2.35"  # half away from zero
    assert canonical_value("f", CANONICAL) == "f"
    with pytest.raises(ValueError, match="no canonical text"):
        canonical_value(1.5, "float")


PAYMENT = TableMapping.model_validate(
    {
        "table": "PAYMENT",
        "entity": "payment",
        "key": ["SITE_ID", "PAYMENT_NO"],
        "cursor": ["CHG_DATE", "CHG_TIME"],
        "cursor_format": "cyymmdd_hhmmss",
        "soft_delete": {"column": "REC_STATUS", "values": ["D"]},
        "columns": [
            {"source": "SITE_ID", "target": "site_id", "type": "text", "converter": "trim"},
            {"source": "PAYMENT_NO", "target": "payment_number", "type": "bigint"},
            {
                "source": "AMT",
                "target": "amount",
                "type": "decimal(12,2)",
                "converter": {"implied_decimal": 2},
            },
            {"source": "REC_STATUS", "target": "record_status", "type": "text"},
        ],
    }
)
WATERMARK = (datetime(2026, 12, 5, 7, 0, 1), ("S1", 10))
RANGE = KeyRange(("S1", 5), ("S1", 90))


@pytest.mark.parametrize("url", ["mysql+pymysql://u@h/d", "oracle+oracledb://u@h/d",
                                 "db2+ibm_db://u@h/d", "ibmi://u@h"])  # fmt: skip
def test_the_portable_source_side_is_written_in_each_engines_sql(url: str) -> None:
    adapter = adapter_for(url)
    side = portable.source_side(PAYMENT, schema="B", pending_after=WATERMARK, adapter=adapter)
    style = adapter.style
    queries = [
        build_range_aggregate(side, RANGE),
        build_boundaries(side, RANGE, every=100),
        build_leaf_query(side, RANGE),
        build_hashes_by_key(side, [("S1", 7), ("S2", 8)]),
    ]
    for query in queries:
        # Binds in the engine's style only.
        assert ("%(" not in query.text) if style.named_params else (":lo" not in query.text)
        assert "hashtextextended" not in query.text and "= ANY(" not in query.text
        assert "make_date" not in query.text and "interval" not in query.text
        # Every engine here compares row values by expansion: no "(a, b) >= (...)".
        assert '("SITE_ID", "PAYMENT_NO") >' not in query.text
        assert set(query.params) >= {"sd0", "wm_c0", "wm_c1", "wm_k0", "wm_k1"}
        if style.named_params:  # Oracle: an unquoted identifier begins with a letter
            assert not re.search(r'[^"\w]_[a-z]', query.text), query.text
    aggregate = queries[0].text
    assert '"SITE_ID" = ' in aggregate  # the shared key prefix as an equality
    assert 'CAST("AMT" AS DECIMAL(38, 2)) / 100' in aggregate
    assert f'CAST("CHG_DATE" AS {adapter.integer_type})' in aggregate
    if style.named_params:
        assert 'MOD(s."_rn" - 1, :every)' in queries[1].text and ") s WHERE" in queries[1].text
    else:
        assert "(s._rn - 1) %% %(every)s" in queries[1].text


def test_the_warehouse_side_hashes_its_stored_columns_by_the_contract() -> None:
    side = portable.warehouse_contract_side(PAYMENT, system="icoms", timezone="America/Chicago")
    text = build_leaf_query(side, RANGE).text
    assert "md5(" in text and "hashtextextended" not in text
    assert "to_char(t._source_version, 'YYYYMMDDHH24MISS')" in text
    assert 'replace(replace(nullif(rtrim(CAST(t."site_id" AS TEXT))' in text
    assert '("site_id", "payment_number")' not in text  # warehouse keys are t.-qualified
