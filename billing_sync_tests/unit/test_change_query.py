"""The change query builder: the SQL text, table-driven."""

from __future__ import annotations

from datetime import datetime

import pytest

from billing_sync.capture.query import (
    build_change_query,
    build_high_watermark_query,
    build_rows_by_key_query,
)
from billing_sync.capture.window import Cursor, Window
from billing_sync.config import TableMapping
from billing_sync.source.engines import adapter_for
from billing_sync.sql import POSTGRES_STYLE, QueryStyle, quote_ident

STYLES: dict[str, QueryStyle] = {
    "postgresql": POSTGRES_STYLE,
    "oracle": adapter_for("oracle+oracledb://u@h/d").style,
    "db2": adapter_for("db2+ibm_db://u@h/d").style,
}
T = datetime(2026, 11, 25, 12, 0, 0, 123456)
H = datetime(2026, 11, 25, 12, 0, 5)


def mapping(*, key: list[str], fallback: str | None = "CRT_TS") -> TableMapping:
    columns = [{"source": name, "target": name.lower(), "type": "text"} for name in key]
    columns.append({"source": "AMOUNT", "target": "amount", "type": "decimal(12,2)"})
    return TableMapping.model_validate(
        {
            "table": "PAYMENT",
            "entity": "payment",
            "key": key,
            "cursor": "CHG_TS",
            "cursor_fallback": fallback,
            "columns": columns,
        }
    )


CASES = [
    pytest.param(
        mapping(key=["SITE_ID", "PAYMENT_NO"]),
        None,
        'SELECT "SITE_ID", "PAYMENT_NO", "AMOUNT", COALESCE("CHG_TS", "CRT_TS") AS "_cursor_ts"'
        ' FROM "icoms"."PAYMENT"'
        ' WHERE COALESCE("CHG_TS", "CRT_TS") < %(horizon)s'
        ' ORDER BY COALESCE("CHG_TS", "CRT_TS"), "SITE_ID", "PAYMENT_NO" LIMIT %(limit)s',
        {"horizon": H, "limit": 500},
        id="first batch: no lower bound",
    ),
    pytest.param(
        mapping(key=["SITE_ID", "PAYMENT_NO"]),
        Cursor(T, ("001", "42")),
        'SELECT "SITE_ID", "PAYMENT_NO", "AMOUNT", COALESCE("CHG_TS", "CRT_TS") AS "_cursor_ts"'
        ' FROM "icoms"."PAYMENT"'
        ' WHERE (COALESCE("CHG_TS", "CRT_TS"), "SITE_ID", "PAYMENT_NO")'
        " > (%(cursor_ts)s, %(cursor_k0)s, %(cursor_k1)s)"
        ' AND COALESCE("CHG_TS", "CRT_TS") < %(horizon)s'
        ' ORDER BY COALESCE("CHG_TS", "CRT_TS"), "SITE_ID", "PAYMENT_NO" LIMIT %(limit)s',
        {"horizon": H, "limit": 500, "cursor_ts": T, "cursor_k0": "001", "cursor_k1": "42"},
        id="tuple cursor resumes inside a shared timestamp",
    ),
    pytest.param(
        mapping(key=["ID"], fallback=None),
        Cursor(T, ("7",)),
        'SELECT "ID", "AMOUNT", "CHG_TS" AS "_cursor_ts" FROM "icoms"."PAYMENT"'
        ' WHERE ("CHG_TS", "ID") > (%(cursor_ts)s, %(cursor_k0)s)'
        ' AND "CHG_TS" < %(horizon)s ORDER BY "CHG_TS", "ID" LIMIT %(limit)s',
        {"horizon": H, "limit": 500, "cursor_ts": T, "cursor_k0": "7"},
        id="no creation fallback: the bare cursor column",
    ),
]


@pytest.mark.parametrize(("table", "after", "text", "params"), CASES)
def test_change_query_text(
    table: TableMapping, after: Cursor | None, text: str, params: dict[str, object]
) -> None:
    query = build_change_query(table, schema="icoms", window=Window(after, H, 500))
    assert query.text == text
    assert query.params == params


def test_values_never_become_sql_text() -> None:
    hostile = "001'); DROP TABLE x; --"
    query = build_change_query(
        mapping(key=["SITE_ID"]), schema="icoms", window=Window(Cursor(T, (hostile,)), H, 5)
    )
    assert hostile not in query.text
    assert query.params["cursor_k0"] == hostile


def test_identifiers_are_quoted() -> None:
    assert quote_ident('a"b') == '"a""b"'
    assert build_high_watermark_query(mapping(key=["ID"]), schema="icoms") == (
        'SELECT max(COALESCE("CHG_TS", "CRT_TS")) FROM "icoms"."PAYMENT"'
    )


def test_oracle_and_db2_expand_the_row_value_comparison() -> None:
    table = mapping(key=["SITE_ID", "PAYMENT_NO"])
    for engine in ("oracle", "db2"):
        query = build_change_query(
            table,
            schema="ICOMS",
            window=Window(Cursor(T, ("001", "42")), H, 500),
            style=STYLES[engine],
        )
        assert query.text == (
            'SELECT "SITE_ID", "PAYMENT_NO", "AMOUNT", COALESCE("CHG_TS", "CRT_TS") AS "_cursor_ts"'
            ' FROM "ICOMS"."PAYMENT"'
            ' WHERE COALESCE("CHG_TS", "CRT_TS") >= :cursor_ts'
            ' AND (COALESCE("CHG_TS", "CRT_TS") > :cursor_ts'
            ' OR (COALESCE("CHG_TS", "CRT_TS") = :cursor_ts'
            ' AND ("SITE_ID" > :cursor_k0 OR ("SITE_ID" = :cursor_k0'
            ' AND ("PAYMENT_NO" > :cursor_k1)))))'
            ' AND COALESCE("CHG_TS", "CRT_TS") < :horizon'
            ' ORDER BY COALESCE("CHG_TS", "CRT_TS"), "SITE_ID", "PAYMENT_NO"'
            " FETCH FIRST 500 ROWS ONLY"
        )


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql+psycopg://u@h/d", "FROM pg_stat_activity"),
        ("oracle+oracledb://u@h/d", "FROM v$transaction"),
        ("db2+ibm_db://u@h/d", "MON_GET_UNIT_OF_WORK"),
        ("ibmi://u@h", "QSYS2.DB_TRANSACTION_INFO"),
    ],
)
def test_each_engine_reads_its_oldest_open_transaction(url: str, fragment: str) -> None:
    sql = adapter_for(url).oldest_transaction_sql()
    assert sql is not None
    assert fragment in sql


def test_a_snapshot_handover_cursor_reads_from_its_timestamp_on() -> None:
    query = build_change_query(
        mapping(key=["ID"]), schema="icoms", window=Window(Cursor(T, ()), H, 10)
    )
    assert 'WHERE COALESCE("CHG_TS", "CRT_TS") >= %(cursor_ts)s AND' in query.text
    assert query.params == {"cursor_ts": T, "horizon": H, "limit": 10}


def test_rows_by_key_binds_every_value() -> None:
    query = build_rows_by_key_query(
        mapping(key=["SITE_ID", "PAYMENT_NO"]), schema="icoms", keys=[("001", "1"), ("002", "9")]
    )
    assert query.text.endswith(
        'WHERE ("SITE_ID", "PAYMENT_NO") IN ((%(k0_0)s, %(k1_0)s), (%(k0_1)s, %(k1_1)s))'
    )
    assert query.params == {"k0_0": "001", "k1_0": "1", "k0_1": "002", "k1_1": "9"}


# -- composite cursor: (CYYMMDD, HHMMSS) integer columns in local time ------------------------


def composite(*, key: list[str]) -> TableMapping:
    columns = [{"source": name, "target": name.lower(), "type": "text"} for name in key]
    columns.append({"source": "AMOUNT", "target": "amount", "type": "decimal(12,2)"})
    return TableMapping.model_validate(
        {
            "table": "ACCOUNT",
            "entity": "billing_account",
            "key": key,
            "cursor": ["CHG_DATE", "CHG_TIME"],
            "cursor_format": "cyymmdd_hhmmss",
            "columns": columns,
        }
    )


ACCOUNT = composite(key=["SITE_ID", "ACCOUNT_NO"])
SELECT_ACCOUNT = (
    'SELECT "SITE_ID", "ACCOUNT_NO", "AMOUNT",'
    ' "CHG_DATE" AS "_cursor_date", "CHG_TIME" AS "_cursor_time" FROM "icoms"."ACCOUNT"'
)
ORDER_ACCOUNT = ' ORDER BY "CHG_DATE", "CHG_TIME", "SITE_ID", "ACCOUNT_NO"'
HORIZON_PARAMS = {"horizon_date": 1261125, "horizon_time": 120005}

COMPOSITE_CASES = [
    pytest.param(
        None,
        "postgresql",
        SELECT_ACCOUNT
        + ' WHERE ("CHG_DATE", "CHG_TIME") < (%(horizon_date)s, %(horizon_time)s)'
        + ORDER_ACCOUNT
        + " LIMIT %(limit)s",
        {**HORIZON_PARAMS, "limit": 500},
        id="first batch: below the horizon, raw columns only",
    ),
    pytest.param(
        Cursor(T, ("001", "42")),
        "postgresql",
        SELECT_ACCOUNT + ' WHERE ("CHG_DATE", "CHG_TIME", "SITE_ID", "ACCOUNT_NO")'
        " > (%(cursor_date)s, %(cursor_time)s, %(cursor_k0)s, %(cursor_k1)s)"
        ' AND ("CHG_DATE", "CHG_TIME") < (%(horizon_date)s, %(horizon_time)s)'
        + ORDER_ACCOUNT
        + " LIMIT %(limit)s",
        {
            **HORIZON_PARAMS,
            "limit": 500,
            "cursor_date": 1261125,
            "cursor_time": 120000,
            "cursor_k0": "001",
            "cursor_k1": "42",
        },
        id="tuple cursor over (date, time, key...); microseconds floored",
    ),
    pytest.param(
        Cursor(T, ()),
        "postgresql",
        SELECT_ACCOUNT + ' WHERE ("CHG_DATE", "CHG_TIME") >= (%(cursor_date)s, %(cursor_time)s)'
        ' AND ("CHG_DATE", "CHG_TIME") < (%(horizon_date)s, %(horizon_time)s)'
        + ORDER_ACCOUNT
        + " LIMIT %(limit)s",
        {**HORIZON_PARAMS, "limit": 500, "cursor_date": 1261125, "cursor_time": 120000},
        id="snapshot hand-over: from this second on",
    ),
    pytest.param(
        Cursor(T, ("001", "42")),
        "db2",
        'SELECT "SITE_ID", "ACCOUNT_NO", "AMOUNT",'
        ' "CHG_DATE" AS "_cursor_date", "CHG_TIME" AS "_cursor_time" FROM "icoms"."ACCOUNT"'
        ' WHERE "CHG_DATE" >= :cursor_date AND ("CHG_DATE" > :cursor_date'
        ' OR ("CHG_DATE" = :cursor_date AND ("CHG_TIME" > :cursor_time'
        ' OR ("CHG_TIME" = :cursor_time AND ("SITE_ID" > :cursor_k0'
        ' OR ("SITE_ID" = :cursor_k0 AND ("ACCOUNT_NO" > :cursor_k1)))))))'
        ' AND "CHG_DATE" <= :horizon_date AND ("CHG_DATE" < :horizon_date'
        ' OR ("CHG_DATE" = :horizon_date AND ("CHG_TIME" < :horizon_time)))'
        + ORDER_ACCOUNT
        + " FETCH FIRST 500 ROWS ONLY",
        {
            **HORIZON_PARAMS,
            "cursor_date": 1261125,
            "cursor_time": 120000,
            "cursor_k0": "001",
            "cursor_k1": "42",
        },
        id="DB2: expanded, led by a range on the leading index column",
    ),
    pytest.param(
        Cursor(T, ()),
        "oracle",
        SELECT_ACCOUNT + ' WHERE "CHG_DATE" >= :cursor_date AND ("CHG_DATE" > :cursor_date'
        ' OR ("CHG_DATE" = :cursor_date AND ("CHG_TIME" >= :cursor_time)))'
        ' AND "CHG_DATE" <= :horizon_date AND ("CHG_DATE" < :horizon_date'
        ' OR ("CHG_DATE" = :horizon_date AND ("CHG_TIME" < :horizon_time)))'
        + ORDER_ACCOUNT
        + " FETCH FIRST 500 ROWS ONLY",
        {**HORIZON_PARAMS, "cursor_date": 1261125, "cursor_time": 120000},
        id="Oracle hand-over: >= expanded",
    ),
]


@pytest.mark.parametrize(("after", "dialect_name", "text", "params"), COMPOSITE_CASES)
def test_composite_change_query_text(
    after: Cursor | None, dialect_name: str, text: str, params: dict[str, object]
) -> None:
    query = build_change_query(
        ACCOUNT, schema="icoms", window=Window(after, H, 500), style=STYLES[dialect_name]
    )
    assert query.text == text
    assert query.params == params


def test_composite_region_keys_and_rows_by_key_and_high_watermark() -> None:
    from billing_sync.capture.query import build_region_keys_query, decode_high_watermark

    region = build_region_keys_query(
        ACCOUNT, schema="icoms", since=datetime(2026, 11, 25, 11, 59, 30, 5), until=H, limit=9
    )
    assert region.text == (
        'SELECT "SITE_ID", "ACCOUNT_NO", "CHG_DATE" AS "_cursor_date",'
        ' "CHG_TIME" AS "_cursor_time" FROM "icoms"."ACCOUNT"'
        ' WHERE ("CHG_DATE", "CHG_TIME") >= (%(since_date)s, %(since_time)s)'
        ' AND ("CHG_DATE", "CHG_TIME") < (%(until_date)s, %(until_time)s)'
        + ORDER_ACCOUNT
        + " LIMIT %(limit)s"
    )
    assert region.params == {
        "since_date": 1261125,
        "since_time": 115930,
        "until_date": 1261125,
        "until_time": 120005,
        "limit": 9,
    }
    by_key = build_rows_by_key_query(ACCOUNT, schema="icoms", keys=[("001", "1")])
    assert by_key.text == (
        SELECT_ACCOUNT + ' WHERE ("SITE_ID", "ACCOUNT_NO") IN ((%(k0_0)s, %(k1_0)s))'
    )
    assert build_high_watermark_query(ACCOUNT, schema="icoms") == (
        'SELECT CAST("CHG_DATE" AS decimal(18,0)) * 1000000 + "CHG_TIME" FROM "icoms"."ACCOUNT"'
        ' WHERE "CHG_DATE" IS NOT NULL AND "CHG_TIME" IS NOT NULL'
        ' ORDER BY "CHG_DATE" DESC, "CHG_TIME" DESC LIMIT 1'
    )
    assert decode_high_watermark(ACCOUNT, 1261125_120005) == H
    assert decode_high_watermark(ACCOUNT, None) is None
    assert decode_high_watermark(mapping(key=["ID"]), T) == T


def test_composite_snapshot_query_carries_the_raw_cursor() -> None:
    from billing_sync.capture.snapshot import build_snapshot_query

    query = build_snapshot_query(ACCOUNT, schema="icoms", after_key=("001", "9"), limit=5)
    assert query.text == (
        SELECT_ACCOUNT + ' WHERE ("SITE_ID", "ACCOUNT_NO") > (%(after_k0)s, %(after_k1)s)'
        ' ORDER BY "SITE_ID", "ACCOUNT_NO" LIMIT %(limit)s'
    )


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"cursor": ["CHG_DATE", "CHG_TIME"]}, "timestamp takes one cursor column"),
        ({"cursor_format": "cyymmdd_hhmmss"}, "takes two cursor columns"),
        (
            {"cursor": ["CHG_DATE", "CHG_TIME"], "cursor_format": "cyymmdd_hhmmss"},
            "cursor_fallback is only allowed",
        ),
        ({"cursor_format": "julian"}, "cursor_format"),
    ],
)
def test_cursor_and_format_must_agree(changes: dict[str, object], error: str) -> None:
    raw = {
        "table": "T",
        "entity": "e",
        "key": ["ID"],
        "cursor": "CHG_TS",
        "cursor_fallback": "CRT_TS",
        "columns": [{"source": "ID", "target": "id", "type": "text"}],
        **changes,
    }
    with pytest.raises(ValueError, match=error):
        TableMapping.model_validate(raw)
