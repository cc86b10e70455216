# ruff: noqa: E501  (pinned SQL texts are kept on one line each, as the driver gets them)
"""The capture side's queries on Oracle and Db2, as each engine's real SQLAlchemy dialect
compiles them for its driver (no server for either runs here).

The builders (change, lookback region, rows by key, high watermark, snapshot chunk with
an operator filter, count, the unreadable-stamp sample) write the text in the adapter's
style; ``queries.statement`` hands it to the dialect, which turns ``:name`` binds into
its driver's style. Oracle is pinned in full; Db2 LUW and Db2 for i must be the same
text with ``?`` markers (in the order the compiled statement lists) and ``VARCHAR(32672)``.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from billing_sync.capture.filter_expr import parse_filter
from billing_sync.capture.query import (
    build_change_query,
    build_high_watermark_query,
    build_region_keys_query,
    build_rows_by_key_query,
)
from billing_sync.capture.snapshot import build_count_query, build_snapshot_query
from billing_sync.capture.unreadable import build_unreadable_rows
from billing_sync.capture.window import Cursor, Window
from billing_sync.config import TableMapping
from billing_sync.source.engines import EngineAdapter, adapter_for
from billing_sync.source.engines.queries import statement
from billing_sync.sql import BoundQuery

pytest.importorskip("ibm_db_sa", reason="Db2 SQL is compiled by ibm-db-sa: pip install -e '.[dev]'")
pytest.importorskip("sqlalchemy_ibmi", reason="Db2 for i SQL: pip install -e '.[dev]'")

T = datetime(2026, 11, 25, 12, 0, 0, 123456)
H = datetime(2026, 11, 25, 12, 0, 5)
ACCOUNT = TableMapping.model_validate(
    {
        "table": "ACCOUNT",
        "entity": "account",
        "key": ["SITE_ID", "ACCOUNT_NO"],
        "cursor": ["CHG_DATE", "CHG_TIME"],
        "cursor_format": "cyymmdd_hhmmss",
        "columns": [
            {"source": "SITE_ID", "target": "site_id", "type": "text"},
            {"source": "ACCOUNT_NO", "target": "account_no", "type": "text"},
            {"source": "BALANCE", "target": "balance", "type": "decimal(12,2)"},
        ],
    }
)
SITES = {"SITE_ID": "text"}


def _queries(adapter: EngineAdapter) -> dict[str, BoundQuery]:
    style = adapter.style
    return {
        "change": build_change_query(
            ACCOUNT, schema="ICOMS", window=Window(Cursor(T, ("001", "42")), H, 500), style=style
        ),
        "region": build_region_keys_query(
            ACCOUNT, schema="ICOMS", since=T, until=H, limit=9, style=style
        ),
        "by_key": build_rows_by_key_query(
            ACCOUNT, schema="ICOMS", keys=[("001", "1"), ("002", "7")], style=style
        ),
        "high": BoundQuery(build_high_watermark_query(ACCOUNT, schema="ICOMS", style=style), {}),
        "snapshot": build_snapshot_query(
            ACCOUNT,
            schema="ICOMS",
            after_key=("001", "9"),
            limit=1000,
            where=parse_filter("SITE_ID = '001'", label="icoms.ACCOUNT", columns=SITES),
            style=style,
        ),
        "count": build_count_query(
            ACCOUNT,
            schema="ICOMS",
            where=parse_filter("SITE_ID IN ('001', '002')", label="icoms.ACCOUNT", columns=SITES),
            style=style,
        ),
        "unreadable": build_unreadable_rows(ACCOUNT, schema="ICOMS", source_now=H, style=style),
    }


ORACLE = {
    "change": 'SELECT "SITE_ID", "ACCOUNT_NO", "BALANCE", "CHG_DATE" AS "_cursor_date", "CHG_TIME" AS "_cursor_time" FROM "ICOMS"."ACCOUNT" WHERE "CHG_DATE" >= :cursor_date AND ("CHG_DATE" > :cursor_date OR ("CHG_DATE" = :cursor_date AND ("CHG_TIME" > :cursor_time OR ("CHG_TIME" = :cursor_time AND ("SITE_ID" > :cursor_k0 OR ("SITE_ID" = :cursor_k0 AND ("ACCOUNT_NO" > :cursor_k1))))))) AND "CHG_DATE" <= :horizon_date AND ("CHG_DATE" < :horizon_date OR ("CHG_DATE" = :horizon_date AND ("CHG_TIME" < :horizon_time))) ORDER BY "CHG_DATE", "CHG_TIME", "SITE_ID", "ACCOUNT_NO" FETCH FIRST 500 ROWS ONLY',
    "region": 'SELECT "SITE_ID", "ACCOUNT_NO", "CHG_DATE" AS "_cursor_date", "CHG_TIME" AS "_cursor_time" FROM "ICOMS"."ACCOUNT" WHERE "CHG_DATE" >= :since_date AND ("CHG_DATE" > :since_date OR ("CHG_DATE" = :since_date AND ("CHG_TIME" >= :since_time))) AND "CHG_DATE" <= :until_date AND ("CHG_DATE" < :until_date OR ("CHG_DATE" = :until_date AND ("CHG_TIME" < :until_time))) ORDER BY "CHG_DATE", "CHG_TIME", "SITE_ID", "ACCOUNT_NO" FETCH FIRST 9 ROWS ONLY',
    "by_key": 'SELECT "SITE_ID", "ACCOUNT_NO", "BALANCE", "CHG_DATE" AS "_cursor_date", "CHG_TIME" AS "_cursor_time" FROM "ICOMS"."ACCOUNT" WHERE ("SITE_ID", "ACCOUNT_NO") IN ((:k0_0, :k1_0), (:k0_1, :k1_1))',
    "high": 'SELECT CAST("CHG_DATE" AS decimal(18,0)) * 1000000 + "CHG_TIME" FROM "ICOMS"."ACCOUNT" WHERE "CHG_DATE" IS NOT NULL AND "CHG_TIME" IS NOT NULL ORDER BY "CHG_DATE" DESC, "CHG_TIME" DESC FETCH FIRST 1 ROWS ONLY',
    "snapshot": 'SELECT "SITE_ID", "ACCOUNT_NO", "BALANCE", "CHG_DATE" AS "_cursor_date", "CHG_TIME" AS "_cursor_time" FROM "ICOMS"."ACCOUNT" WHERE "SITE_ID" >= :after_k0 AND ("SITE_ID" > :after_k0 OR ("SITE_ID" = :after_k0 AND ("ACCOUNT_NO" > :after_k1))) AND ("SITE_ID" = :filter_0) ORDER BY "SITE_ID", "ACCOUNT_NO" FETCH FIRST 1000 ROWS ONLY',
    "count": 'SELECT count(*) FROM "ICOMS"."ACCOUNT" WHERE ("SITE_ID" IN (:filter_0, :filter_1))',
    "unreadable": 'SELECT "SITE_ID", "ACCOUNT_NO", COALESCE(CAST("CHG_DATE" AS VARCHAR2(4000)), \'NULL\') || \' \' || COALESCE(CAST("CHG_TIME" AS VARCHAR2(4000)), \'NULL\') AS "_stamp" FROM "ICOMS"."ACCOUNT" WHERE ("CHG_DATE" IS NULL OR "CHG_TIME" IS NULL OR "CHG_DATE" <= 0 OR mod(TRUNC("CHG_DATE" / 100, 0), 100) NOT BETWEEN 1 AND 12 OR mod("CHG_DATE", 100) < 1 OR mod("CHG_DATE", 100) > CASE WHEN mod(TRUNC("CHG_DATE" / 100, 0), 100) IN (4, 6, 9, 11) THEN 30 WHEN mod(TRUNC("CHG_DATE" / 100, 0), 100) = 2 THEN CASE WHEN (mod((TRUNC("CHG_DATE" / 10000, 0) + 1900), 4) = 0 AND (mod((TRUNC("CHG_DATE" / 10000, 0) + 1900), 100) <> 0 OR mod((TRUNC("CHG_DATE" / 10000, 0) + 1900), 400) = 0)) THEN 29 ELSE 28 END ELSE 31 END OR "CHG_TIME" < 0 OR TRUNC("CHG_TIME" / 10000, 0) > 23 OR mod(TRUNC("CHG_TIME" / 100, 0), 100) > 59 OR mod("CHG_TIME", 100) > 59 OR "CHG_DATE" >= :ceiling_d AND ("CHG_DATE" > :ceiling_d OR ("CHG_DATE" = :ceiling_d AND ("CHG_TIME" > :ceiling_t)))) ORDER BY "SITE_ID", "ACCOUNT_NO" FETCH FIRST 1000 ROWS ONLY',
}


def _compiled(adapter: EngineAdapter, query: BoundQuery) -> tuple[str, list[str] | None]:
    compiled = statement(adapter, query).compile(dialect=adapter.dialect)
    order = list(compiled.positiontup or []) if compiled.positional else None
    return " ".join(compiled.string.split()), order


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_oracle_text(name: str) -> None:
    adapter = adapter_for("oracle+oracledb://u@h/?service_name=BILL")
    query = _queries(adapter)[name]
    text, order = _compiled(adapter, query)
    assert text == ORACLE[name]
    assert order is None  # python-oracledb binds by name
    assert set(re.findall(r":(\w+)", text)) == set(query.params)  # every bind has its value


@pytest.mark.parametrize("url", ["db2+ibm_db://u@h/BILL", "ibmi://u@h"])
@pytest.mark.parametrize("name", sorted(ORACLE))
def test_db2_text_is_oracles_with_question_marks_in_order(url: str, name: str) -> None:
    adapter = adapter_for(url)
    text, order = _compiled(adapter, _queries(adapter)[name])
    expected_order = re.findall(r":(\w+)", ORACLE[name])
    expected = re.sub(r":\w+", "?", ORACLE[name]).replace("VARCHAR2(4000)", "VARCHAR(32672)")
    assert text == expected
    assert order == expected_order


def test_the_limit_is_a_literal_and_no_bind_is_left_without_a_value() -> None:
    adapter = adapter_for("db2+ibm_db://u@h/BILL")
    for name, query in _queries(adapter).items():
        assert "limit" not in query.params, name
        compiled = statement(adapter, query).compile(dialect=adapter.dialect)
        assert set(compiled.positiontup or []) <= set(query.params), name


def test_postgres_and_mysql_sessions_do_not_compile_the_text() -> None:
    with pytest.raises(ValueError, match="pyformat"):
        statement(adapter_for("mysql+pymysql://u@h/d"), BoundQuery("SELECT 1", {}))
