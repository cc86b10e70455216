"""Values no reader holds, and cursors the tail cannot read (issue 12, items 5 and 6)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_sync.capture.cursor import decode_stamps
from billing_sync.capture.unreadable import build_unreadable_count, unreadable_predicate
from billing_sync.config import TableMapping
from billing_sync.source.guarded import Unreadable, guarded_table, marker
from billing_sync.transform.normalize import CONVERT_EXPECTATION, normalize_batch

MAPPING = TableMapping.model_validate(
    {
        "table": "T", "entity": "e", "key": ["ID"], "cursor": "TS", "cursor_fallback": "CR",
        "columns": [
            {"source": "ID", "target": "id", "type": "integer"},
            {"source": "BD", "target": "birth_date", "type": "date"},
            {"source": "AMT", "target": "amount", "type": "decimal(12,2)"},
        ],
    }
)  # fmt: skip
COMPOSITE = TableMapping.model_validate(
    {
        "table": "P", "entity": "p", "key": ["K"], "cursor": ["CHG_DATE", "CHG_TIME"],
        "cursor_format": "cyymmdd_hhmmss",
        "columns": [{"source": "K", "target": "k", "type": "text"}],
    }
)  # fmt: skip
SCHEMA = pa.schema(
    [("ID", pa.int32()), ("BD", pa.date32()), ("AMT", pa.decimal128(12, 2)),
     ("_cursor_ts", pa.timestamp("us"))]
)  # fmt: skip
TS = datetime(2026, 12, 4, 10)


def test_values_no_reader_holds_become_null_with_their_text_beside() -> None:
    table = guarded_table(
        [[1, 2, 3], [date(2000, 1, 2), Unreadable("infinity"), None],
         [Decimal("1.50"), Decimal("NaN"), Decimal("1234567890123.45")], [TS, TS, TS]],
        SCHEMA,
    )  # fmt: skip
    assert table.column("BD").to_pylist() == [date(2000, 1, 2), None, None]
    assert table.column(marker("BD")).to_pylist() == [None, "infinity", None]
    assert table.column("AMT").to_pylist() == [Decimal("1.50"), None, None]
    assert table.column(marker("AMT")).to_pylist() == [None, "NaN", "1234567890123.45"]
    assert marker("ID") not in table.column_names


def test_unreadable_values_quarantine_their_row_with_table_key_column_and_value() -> None:
    table = guarded_table(
        [[1, 2], [Unreadable("infinity"), date(1990, 5, 6)], [Decimal(1), Decimal(2)], [TS, TS]],
        SCHEMA,
    )
    normalized = normalize_batch(table, MAPPING, system="amdocs", synced_at=TS)
    assert normalized.frame.height == 2  # the row stays, its value NULL, for quarantine
    (failure,) = normalized.failures
    assert failure.expectation == CONVERT_EXPECTATION
    assert (failure.column, failure.sample_keys, failure.sample_values) == (
        "birth_date", ["1"], ["infinity"])  # fmt: skip
    assert failure.kwargs["table"] == "T" and "cannot hold" in failure.kwargs["reason"]


def test_a_row_without_a_readable_stamp_is_left_to_the_probe() -> None:
    table = guarded_table([[1, 2], [None, None], [None, None], [TS, None]], SCHEMA)
    frame = normalize_batch(table, MAPPING, system="amdocs", synced_at=TS).frame
    assert frame.get_column("id").to_list() == [1]


@pytest.mark.parametrize(
    ("mapping", "fragments"),
    [
        (MAPPING, ['COALESCE("TS", "CR") IS NULL', 'COALESCE("TS", "CR") > %(ceiling)s',
                   'COALESCE("TS", "CR") < %(floor)s']),
        (COMPOSITE, ['"CHG_DATE" IS NULL', '"CHG_TIME" IS NULL', 'mod("CHG_DATE" / 100, 100)'
                     " NOT BETWEEN 1 AND 12", '"CHG_TIME" / 10000 > 23',
                     '("CHG_DATE", "CHG_TIME") > (%(ceiling_d)s, %(ceiling_t)s)']),
    ],
)  # fmt: skip
def test_the_probe_predicate(mapping: TableMapping, fragments: list[str]) -> None:
    text, _ = unreadable_predicate(mapping)
    for fragment in fragments:
        assert fragment in text
    query = build_unreadable_count(mapping, schema="s", source_now=TS)
    assert query.text.startswith(f'SELECT count(*) FROM "s"."{mapping.table}" WHERE (')
    assert "%" not in query.text.replace("%(", "")  # no bare % for psycopg to trip on


def _valid(d: int, t: int) -> bool:
    try:
        datetime(d // 10_000 + 1900, d // 100 % 100, d % 100, t // 10_000, t // 100 % 100, t % 100)
    except ValueError:
        return False
    return d > 0


@given(st.integers(0, 9_999_999), st.integers(0, 999_999))
def test_a_stamp_the_probe_passes_decodes_to_itself(d: int, t: int) -> None:
    """Every (date, time) the probe does not flag is a real instant the cursor decode
    keeps as it is: no row with a readable-looking stamp is silently floored."""
    decoded = decode_stamps(pl.Series([d]), pl.Series([t])).to_list()[0]
    if _valid(d, t):
        assert decoded.strftime("%Y%m%d%H%M%S") == f"{d + 19_000_000:08d}{t:06d}"


def test_text_postgresql_cannot_store_quarantines_its_row() -> None:
    """EBCDIC or Latin-1 bytes can decode to NUL, which no PostgreSQL text holds: the COPY
    of the whole batch (and of the quarantine payload) would fail, naming nothing."""
    mapping = TableMapping.model_validate(
        {
            "table": "A", "entity": "a", "key": ["ID"], "cursor": "TS",
            "columns": [{"source": "ID", "target": "id", "type": "integer"},
                        {"source": "NM", "target": "name", "type": "text",
                         "converter": "latin1"}],
        }
    )  # fmt: skip
    table = pa.table(
        {"ID": pa.array([1, 2], pa.int32()), "NM": pa.array([b"ok", b"a\x00b"], pa.binary()),
         "_cursor_ts": pa.array([TS, TS], pa.timestamp("us"))}
    )  # fmt: skip
    normalized = normalize_batch(table, mapping, system="icoms", synced_at=TS)
    assert normalized.frame.get_column("name").to_list() == ["ok", None]
    (failure,) = normalized.failures
    assert (failure.column, failure.sample_keys, failure.sample_values) == (
        "name", ["2"], ["a\\0b"])  # fmt: skip
    assert "NUL" in failure.kwargs["reason"]
