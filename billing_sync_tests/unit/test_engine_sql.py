# ruff: noqa: E501  (pinned SQL texts are kept on one line each, as the driver gets them)
"""Source queries compiled by each engine's real SQLAlchemy dialect, pinned as SQL text.

One description (a catalog-like :class:`SourceTable`) per case; the text is what the
driver receives (``__[POSTCOMPILE_...]`` is a limit the dialect writes as a literal at
execution). MySQL/MariaDB, Oracle and Db2 get the expanded OR form of row comparisons
(see ``queries.py``); PostgreSQL keeps row values.
"""

from __future__ import annotations

import pytest

from billing_sync.source.engines import (
    ADAPTERS,
    MissingDriver,
    UnsupportedEngine,
    adapter_class,
    adapter_for,
)
from billing_sync.source.engines.oracle import decimal_format
from billing_sync.source.engines.queries import (
    SourceTable,
    change_query,
    compiled_text,
    key_range_hash,
    snapshot_chunk,
)

pytest.importorskip("ibm_db_sa", reason="Db2 SQL is compiled by ibm-db-sa: pip install -e '.[dev]'")
pytest.importorskip("sqlalchemy_ibmi", reason="Db2 for i SQL: pip install -e '.[dev]'")

ACCOUNT = SourceTable(
    name="ACCOUNT",
    columns=("ACCOUNT_NO", "STATUS", "CHG_TS"),
    key=("ACCOUNT_NO",),
    cursor=("CHG_TS",),
    cursor_fallback="CRT_TS",
    schema="BILL",
)
SERVICE = SourceTable(  # the ICOMS shape: composite CYYMMDD/HHMMSS stamp, composite key
    name="SVC",
    columns=("SITE", "SVC_NO", "RATE", "CHG_DATE", "CHG_TIME"),
    key=("SITE", "SVC_NO"),
    cursor=("CHG_DATE", "CHG_TIME"),
)
HASHED = [("SITE", "text"), ("RATE", "decimal(9,2)"), ("CHG_DATE", "integer")]

URLS = {
    "postgresql+psycopg": "postgresql+psycopg://u@h/d",
    "mysql+pymysql": "mysql+pymysql://u@h/d",
    "oracle+oracledb": "oracle+oracledb://u@h/d",
    "db2+ibm_db": "db2+ibm_db://u@h/d",
    "ibmi": "ibmi://u@h",
}


def _build(url: str, name: str) -> str:
    adapter = adapter_for(url)
    query = {
        "change": lambda: change_query(adapter, ACCOUNT, batch_rows=500),
        "change_composite": lambda: change_query(adapter, SERVICE, batch_rows=500),
        "snapshot_first": lambda: snapshot_chunk(adapter, SERVICE, first=True, batch_rows=1000),
        "snapshot_next": lambda: snapshot_chunk(adapter, SERVICE, first=False, batch_rows=1000),
        "key_range_hash": lambda: key_range_hash(adapter, SERVICE, HASHED, hi=False),
    }[name]()
    return " ".join(compiled_text(adapter, query).split())


CASES = [
    (
        "postgresql+psycopg",
        "change",
        'SELECT "BILL"."ACCOUNT"."ACCOUNT_NO", "BILL"."ACCOUNT"."STATUS", "BILL"."ACCOUNT"."CHG_TS" FROM "BILL"."ACCOUNT" WHERE (coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS"), "BILL"."ACCOUNT"."ACCOUNT_NO") > (%(wm_c0)s, %(wm_k0)s) AND coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") < %(horizon_c0)s ORDER BY coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS"), "BILL"."ACCOUNT"."ACCOUNT_NO" LIMIT %(param_1)s::INTEGER',
    ),
    (
        "postgresql+psycopg",
        "change_composite",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" WHERE ("SVC"."CHG_DATE", "SVC"."CHG_TIME", "SVC"."SITE", "SVC"."SVC_NO") > (%(wm_c0)s, %(wm_c1)s, %(wm_k0)s, %(wm_k1)s) AND ("SVC"."CHG_DATE", "SVC"."CHG_TIME") < (%(horizon_c0)s, %(horizon_c1)s) ORDER BY "SVC"."CHG_DATE", "SVC"."CHG_TIME", "SVC"."SITE", "SVC"."SVC_NO" LIMIT %(param_1)s::INTEGER',
    ),
    (
        "postgresql+psycopg",
        "snapshot_first",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" ORDER BY "SVC"."SITE", "SVC"."SVC_NO" LIMIT %(param_1)s::INTEGER',
    ),
    (
        "postgresql+psycopg",
        "snapshot_next",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" WHERE ("SVC"."SITE", "SVC"."SVC_NO") > (%(after_k0)s, %(after_k1)s) ORDER BY "SVC"."SITE", "SVC"."SVC_NO" LIMIT %(param_1)s::INTEGER',
    ),
    (
        "postgresql+psycopg",
        "key_range_hash",
        "SELECT count(*) AS n, coalesce(sum(CAST(CAST('x' || substr(r._h, 1, 15) AS BIT(60)) AS BIGINT)), 0) AS hash_sum FROM (SELECT md5(coalesce(replace(replace(nullif(rtrim(CAST(\"SVC\".\"SITE\" AS TEXT)), ''), '\\', '\\\\'), '|', '\\|'), '\\N') || '|' || coalesce(CAST(CAST(\"SVC\".\"RATE\" AS NUMERIC(9, 2)) AS TEXT), '\\N') || '|' || coalesce(CAST(CAST(\"SVC\".\"CHG_DATE\" AS BIGINT) AS TEXT), '\\N')) AS _h FROM \"SVC\" WHERE (\"SVC\".\"SITE\", \"SVC\".\"SVC_NO\") >= (%(lo0)s, %(lo1)s)) AS r",
    ),
    (
        "mysql+pymysql",
        "change",
        "SELECT `BILL`.`ACCOUNT`.`ACCOUNT_NO`, `BILL`.`ACCOUNT`.`STATUS`, `BILL`.`ACCOUNT`.`CHG_TS` FROM `BILL`.`ACCOUNT` WHERE coalesce(`BILL`.`ACCOUNT`.`CHG_TS`, `BILL`.`ACCOUNT`.`CRT_TS`) >= %s AND (coalesce(`BILL`.`ACCOUNT`.`CHG_TS`, `BILL`.`ACCOUNT`.`CRT_TS`) > %s OR coalesce(`BILL`.`ACCOUNT`.`CHG_TS`, `BILL`.`ACCOUNT`.`CRT_TS`) = %s AND `BILL`.`ACCOUNT`.`ACCOUNT_NO` > %s) AND coalesce(`BILL`.`ACCOUNT`.`CHG_TS`, `BILL`.`ACCOUNT`.`CRT_TS`) < %s ORDER BY coalesce(`BILL`.`ACCOUNT`.`CHG_TS`, `BILL`.`ACCOUNT`.`CRT_TS`), `BILL`.`ACCOUNT`.`ACCOUNT_NO` LIMIT %s",
    ),
    (
        "mysql+pymysql",
        "change_composite",
        "SELECT `SVC`.`SITE`, `SVC`.`SVC_NO`, `SVC`.`RATE`, `SVC`.`CHG_DATE`, `SVC`.`CHG_TIME` FROM `SVC` WHERE `SVC`.`CHG_DATE` >= %s AND (`SVC`.`CHG_DATE` > %s OR `SVC`.`CHG_DATE` = %s AND (`SVC`.`CHG_TIME` > %s OR `SVC`.`CHG_TIME` = %s AND (`SVC`.`SITE` > %s OR `SVC`.`SITE` = %s AND `SVC`.`SVC_NO` > %s))) AND `SVC`.`CHG_DATE` <= %s AND (`SVC`.`CHG_DATE` < %s OR `SVC`.`CHG_DATE` = %s AND `SVC`.`CHG_TIME` < %s) ORDER BY `SVC`.`CHG_DATE`, `SVC`.`CHG_TIME`, `SVC`.`SITE`, `SVC`.`SVC_NO` LIMIT %s",
    ),
    (
        "mysql+pymysql",
        "snapshot_first",
        "SELECT `SVC`.`SITE`, `SVC`.`SVC_NO`, `SVC`.`RATE`, `SVC`.`CHG_DATE`, `SVC`.`CHG_TIME` FROM `SVC` ORDER BY `SVC`.`SITE`, `SVC`.`SVC_NO` LIMIT %s",
    ),
    (
        "mysql+pymysql",
        "snapshot_next",
        "SELECT `SVC`.`SITE`, `SVC`.`SVC_NO`, `SVC`.`RATE`, `SVC`.`CHG_DATE`, `SVC`.`CHG_TIME` FROM `SVC` WHERE `SVC`.`SITE` >= %s AND (`SVC`.`SITE` > %s OR `SVC`.`SITE` = %s AND `SVC`.`SVC_NO` > %s) ORDER BY `SVC`.`SITE`, `SVC`.`SVC_NO` LIMIT %s",
    ),
    (
        "mysql+pymysql",
        "key_range_hash",
        "SELECT count(*) AS n, coalesce(sum(CAST(conv(substring(r._h, 1, 15), 16, 10) AS SIGNED INTEGER)), 0) AS hash_sum FROM (SELECT md5(CAST(concat(coalesce(replace(replace(CASE WHEN (char_length(rtrim(CAST(`SVC`.`SITE` AS CHAR))) = 0) THEN NULL ELSE rtrim(CAST(`SVC`.`SITE` AS CHAR)) END, '\\\\', '\\\\\\\\'), '|', '\\\\|'), '\\\\N'), '|', coalesce(CAST(CAST(`SVC`.`RATE` AS DECIMAL(9, 2)) AS CHAR), '\\\\N'), '|', coalesce(CAST(CAST(`SVC`.`CHG_DATE` AS SIGNED INTEGER) AS CHAR), '\\\\N')) AS CHAR CHARACTER SET utf8mb4)) AS _h FROM `SVC` WHERE `SVC`.`SITE` >= %s AND (`SVC`.`SITE` > %s OR `SVC`.`SITE` = %s AND `SVC`.`SVC_NO` >= %s)) AS r",
    ),
    (
        "oracle+oracledb",
        "change",
        'SELECT "BILL"."ACCOUNT"."ACCOUNT_NO", "BILL"."ACCOUNT"."STATUS", "BILL"."ACCOUNT"."CHG_TS" FROM "BILL"."ACCOUNT" WHERE coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") >= :wm_c0 AND (coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") > :wm_c0 OR coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") = :wm_c0 AND "BILL"."ACCOUNT"."ACCOUNT_NO" > :wm_k0) AND coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") < :horizon_c0 ORDER BY coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS"), "BILL"."ACCOUNT"."ACCOUNT_NO" FETCH FIRST __[POSTCOMPILE_param_1] ROWS ONLY',
    ),
    (
        "oracle+oracledb",
        "change_composite",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" WHERE "SVC"."CHG_DATE" >= :wm_c0 AND ("SVC"."CHG_DATE" > :wm_c0 OR "SVC"."CHG_DATE" = :wm_c0 AND ("SVC"."CHG_TIME" > :wm_c1 OR "SVC"."CHG_TIME" = :wm_c1 AND ("SVC"."SITE" > :wm_k0 OR "SVC"."SITE" = :wm_k0 AND "SVC"."SVC_NO" > :wm_k1))) AND "SVC"."CHG_DATE" <= :horizon_c0 AND ("SVC"."CHG_DATE" < :horizon_c0 OR "SVC"."CHG_DATE" = :horizon_c0 AND "SVC"."CHG_TIME" < :horizon_c1) ORDER BY "SVC"."CHG_DATE", "SVC"."CHG_TIME", "SVC"."SITE", "SVC"."SVC_NO" FETCH FIRST __[POSTCOMPILE_param_1] ROWS ONLY',
    ),
    (
        "oracle+oracledb",
        "snapshot_first",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" ORDER BY "SVC"."SITE", "SVC"."SVC_NO" FETCH FIRST __[POSTCOMPILE_param_1] ROWS ONLY',
    ),
    (
        "oracle+oracledb",
        "snapshot_next",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" WHERE "SVC"."SITE" >= :after_k0 AND ("SVC"."SITE" > :after_k0 OR "SVC"."SITE" = :after_k0 AND "SVC"."SVC_NO" > :after_k1) ORDER BY "SVC"."SITE", "SVC"."SVC_NO" FETCH FIRST __[POSTCOMPILE_param_1] ROWS ONLY',
    ),
    (
        "oracle+oracledb",
        "key_range_hash",
        'SELECT count(*) AS n, coalesce(sum(to_number(substr(r."_h", 1, 15), \'XXXXXXXXXXXXXXX\')), 0) AS hash_sum FROM (SELECT rawtohex(standard_hash(coalesce(replace(replace(rtrim(CAST("SVC"."SITE" AS VARCHAR2(4000 CHAR))), \'\\\', \'\\\\\'), \'|\', \'\\|\'), \'\\N\') || \'|\' || coalesce(to_char(round("SVC"."RATE", 2), \'FM9999990.00\'), \'\\N\') || \'|\' || coalesce(to_char(trunc("SVC"."CHG_DATE")), \'\\N\'), \'MD5\')) AS "_h" FROM "SVC" WHERE "SVC"."SITE" >= :lo0 AND ("SVC"."SITE" > :lo0 OR "SVC"."SITE" = :lo0 AND "SVC"."SVC_NO" >= :lo1)) r',
    ),
    (
        "db2+ibm_db",
        "change",
        'SELECT "BILL"."ACCOUNT"."ACCOUNT_NO", "BILL"."ACCOUNT"."STATUS", "BILL"."ACCOUNT"."CHG_TS" FROM "BILL"."ACCOUNT" WHERE coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") >= ? AND (coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") > ? OR coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") = ? AND "BILL"."ACCOUNT"."ACCOUNT_NO" > ?) AND coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") < ? ORDER BY coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS"), "BILL"."ACCOUNT"."ACCOUNT_NO" LIMIT __[POSTCOMPILE_param_1]',
    ),
    (
        "db2+ibm_db",
        "change_composite",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" WHERE "SVC"."CHG_DATE" >= ? AND ("SVC"."CHG_DATE" > ? OR "SVC"."CHG_DATE" = ? AND ("SVC"."CHG_TIME" > ? OR "SVC"."CHG_TIME" = ? AND ("SVC"."SITE" > ? OR "SVC"."SITE" = ? AND "SVC"."SVC_NO" > ?))) AND "SVC"."CHG_DATE" <= ? AND ("SVC"."CHG_DATE" < ? OR "SVC"."CHG_DATE" = ? AND "SVC"."CHG_TIME" < ?) ORDER BY "SVC"."CHG_DATE", "SVC"."CHG_TIME", "SVC"."SITE", "SVC"."SVC_NO" LIMIT __[POSTCOMPILE_param_1]',
    ),
    (
        "db2+ibm_db",
        "snapshot_first",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" ORDER BY "SVC"."SITE", "SVC"."SVC_NO" LIMIT __[POSTCOMPILE_param_1]',
    ),
    (
        "db2+ibm_db",
        "snapshot_next",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" WHERE "SVC"."SITE" >= ? AND ("SVC"."SITE" > ? OR "SVC"."SITE" = ? AND "SVC"."SVC_NO" > ?) ORDER BY "SVC"."SITE", "SVC"."SVC_NO" LIMIT __[POSTCOMPILE_param_1]',
    ),
    (
        "db2+ibm_db",
        "key_range_hash",
        'SELECT count(*) AS n, coalesce(sum(bigint(locate(substr(r."_h", 1, 1), \'0123456789ABCDEF\') - 1) * 72057594037927936 + bigint(locate(substr(r."_h", 2, 1), \'0123456789ABCDEF\') - 1) * 4503599627370496 + bigint(locate(substr(r."_h", 3, 1), \'0123456789ABCDEF\') - 1) * 281474976710656 + bigint(locate(substr(r."_h", 4, 1), \'0123456789ABCDEF\') - 1) * 17592186044416 + bigint(locate(substr(r."_h", 5, 1), \'0123456789ABCDEF\') - 1) * 1099511627776 + bigint(locate(substr(r."_h", 6, 1), \'0123456789ABCDEF\') - 1) * 68719476736 + bigint(locate(substr(r."_h", 7, 1), \'0123456789ABCDEF\') - 1) * 4294967296 + bigint(locate(substr(r."_h", 8, 1), \'0123456789ABCDEF\') - 1) * 268435456 + bigint(locate(substr(r."_h", 9, 1), \'0123456789ABCDEF\') - 1) * 16777216 + bigint(locate(substr(r."_h", 10, 1), \'0123456789ABCDEF\') - 1) * 1048576 + bigint(locate(substr(r."_h", 11, 1), \'0123456789ABCDEF\') - 1) * 65536 + bigint(locate(substr(r."_h", 12, 1), \'0123456789ABCDEF\') - 1) * 4096 + bigint(locate(substr(r."_h", 13, 1), \'0123456789ABCDEF\') - 1) * 256 + bigint(locate(substr(r."_h", 14, 1), \'0123456789ABCDEF\') - 1) * 16 + bigint(locate(substr(r."_h", 15, 1), \'0123456789ABCDEF\') - 1) * 1), 0) AS hash_sum FROM (SELECT hex(hash(coalesce(replace(replace(nullif(rtrim(varchar("SVC"."SITE")), \'\'), \'\\\', \'\\\\\'), \'|\', \'\\|\'), \'\\N\') || \'|\' || coalesce(varchar(decimal("SVC"."RATE", 9, 2)), \'\\N\') || \'|\' || coalesce(varchar(bigint("SVC"."CHG_DATE")), \'\\N\'), 0)) AS "_h" FROM "SVC" WHERE "SVC"."SITE" >= ? AND ("SVC"."SITE" > ? OR "SVC"."SITE" = ? AND "SVC"."SVC_NO" >= ?)) AS r',
    ),
    (
        "ibmi",
        "change",
        'SELECT "BILL"."ACCOUNT"."ACCOUNT_NO", "BILL"."ACCOUNT"."STATUS", "BILL"."ACCOUNT"."CHG_TS" FROM "BILL"."ACCOUNT" WHERE coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") >= ? AND (coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") > ? OR coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") = ? AND "BILL"."ACCOUNT"."ACCOUNT_NO" > ?) AND coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS") < ? ORDER BY coalesce("BILL"."ACCOUNT"."CHG_TS", "BILL"."ACCOUNT"."CRT_TS"), "BILL"."ACCOUNT"."ACCOUNT_NO" FETCH FIRST ? ROWS ONLY',
    ),
    (
        "ibmi",
        "change_composite",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" WHERE "SVC"."CHG_DATE" >= ? AND ("SVC"."CHG_DATE" > ? OR "SVC"."CHG_DATE" = ? AND ("SVC"."CHG_TIME" > ? OR "SVC"."CHG_TIME" = ? AND ("SVC"."SITE" > ? OR "SVC"."SITE" = ? AND "SVC"."SVC_NO" > ?))) AND "SVC"."CHG_DATE" <= ? AND ("SVC"."CHG_DATE" < ? OR "SVC"."CHG_DATE" = ? AND "SVC"."CHG_TIME" < ?) ORDER BY "SVC"."CHG_DATE", "SVC"."CHG_TIME", "SVC"."SITE", "SVC"."SVC_NO" FETCH FIRST ? ROWS ONLY',
    ),
    (
        "ibmi",
        "snapshot_first",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" ORDER BY "SVC"."SITE", "SVC"."SVC_NO" FETCH FIRST ? ROWS ONLY',
    ),
    (
        "ibmi",
        "snapshot_next",
        'SELECT "SVC"."SITE", "SVC"."SVC_NO", "SVC"."RATE", "SVC"."CHG_DATE", "SVC"."CHG_TIME" FROM "SVC" WHERE "SVC"."SITE" >= ? AND ("SVC"."SITE" > ? OR "SVC"."SITE" = ? AND "SVC"."SVC_NO" > ?) ORDER BY "SVC"."SITE", "SVC"."SVC_NO" FETCH FIRST ? ROWS ONLY',
    ),
    (
        "ibmi",
        "key_range_hash",
        'SELECT count(*) AS n, coalesce(sum(bigint(locate(substr(r."_h", 1, 1), \'0123456789ABCDEF\') - 1) * 72057594037927936 + bigint(locate(substr(r."_h", 2, 1), \'0123456789ABCDEF\') - 1) * 4503599627370496 + bigint(locate(substr(r."_h", 3, 1), \'0123456789ABCDEF\') - 1) * 281474976710656 + bigint(locate(substr(r."_h", 4, 1), \'0123456789ABCDEF\') - 1) * 17592186044416 + bigint(locate(substr(r."_h", 5, 1), \'0123456789ABCDEF\') - 1) * 1099511627776 + bigint(locate(substr(r."_h", 6, 1), \'0123456789ABCDEF\') - 1) * 68719476736 + bigint(locate(substr(r."_h", 7, 1), \'0123456789ABCDEF\') - 1) * 4294967296 + bigint(locate(substr(r."_h", 8, 1), \'0123456789ABCDEF\') - 1) * 268435456 + bigint(locate(substr(r."_h", 9, 1), \'0123456789ABCDEF\') - 1) * 16777216 + bigint(locate(substr(r."_h", 10, 1), \'0123456789ABCDEF\') - 1) * 1048576 + bigint(locate(substr(r."_h", 11, 1), \'0123456789ABCDEF\') - 1) * 65536 + bigint(locate(substr(r."_h", 12, 1), \'0123456789ABCDEF\') - 1) * 4096 + bigint(locate(substr(r."_h", 13, 1), \'0123456789ABCDEF\') - 1) * 256 + bigint(locate(substr(r."_h", 14, 1), \'0123456789ABCDEF\') - 1) * 16 + bigint(locate(substr(r."_h", 15, 1), \'0123456789ABCDEF\') - 1) * 1), 0) AS hash_sum FROM (SELECT hex(hash_md5(coalesce(replace(replace(nullif(rtrim(varchar("SVC"."SITE")), \'\'), \'\\\', \'\\\\\'), \'|\', \'\\|\'), \'\\N\') || \'|\' || coalesce(varchar(decimal("SVC"."RATE", 9, 2)), \'\\N\') || \'|\' || coalesce(varchar(bigint("SVC"."CHG_DATE")), \'\\N\'))) AS "_h" FROM "SVC" WHERE "SVC"."SITE" >= ? AND ("SVC"."SITE" > ? OR "SVC"."SITE" = ? AND "SVC"."SVC_NO" >= ?)) AS r',
    ),
]


@pytest.mark.parametrize(
    ("engine", "name", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_compiled_sql_text(engine: str, name: str, expected: str) -> None:
    assert _build(URLS[engine], name) == expected


def test_every_engine_and_query_is_pinned() -> None:
    assert {(engine, name) for engine, name, _ in CASES} == {
        (engine, name)
        for engine in URLS
        for name in (
            "change",
            "change_composite",
            "snapshot_first",
            "snapshot_next",
            "key_range_hash",
        )
    }


@pytest.mark.parametrize(
    ("url", "adapter"),
    [
        ("postgresql://u@h/d", "postgresql"),
        ("postgresql+psycopg://u@h/d", "postgresql"),
        ("mysql+pymysql://u@h/d", "mysql"),
        ("mariadb+pymysql://u@h/d", "mysql"),
        ("mariadb+mariadbconnector://u@h/d", "mysql"),
        ("oracle+oracledb://u@h/?service_name=x", "oracle"),
        ("db2+ibm_db://u@h/d", "db2"),
        ("ibm_db_sa://u@h/d", "db2"),
        ("ibmi://u@h", "db2-for-i"),
    ],
)
def test_registry_picks_the_adapter_from_the_url_dialect(url: str, adapter: str) -> None:
    assert adapter_class(url).name == adapter


def test_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(UnsupportedEngine, match=r"'mssql'.*mysql"):
        adapter_class("mssql+pyodbc://u@h/d")


def test_missing_driver_names_the_extra_and_not_the_password() -> None:
    # cx_Oracle is not installed (python-oracledb is the driver the extra installs).
    adapter = adapter_for("oracle+cx_oracle://scott:tiger-secret@db.example:1521/?service_name=B")
    with pytest.raises(MissingDriver) as raised:
        adapter.engine  # noqa: B018
    message = str(raised.value)
    assert "pip install 'billing-sync[oracle]'" in message
    assert "tiger-secret" not in message and "scott:***@db.example:1521" in message


def test_ibmi_missing_driver_names_the_odbc_prerequisites() -> None:
    message = str(adapter_for("ibmi://u:pw@h").missing_driver(ImportError("libodbc.so.2")))
    assert "billing-sync[ibmi]" in message and "unixODBC" in message and "pw@" not in message


def test_every_adapter_says_whether_it_is_tested_live() -> None:
    live = {adapter.name for adapter in ADAPTERS if adapter.tested_live}
    assert live == {"postgresql", "mysql"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "mysql+pymysql://u@h/bill",
            [
                "GRANT SELECT ON `bill`.`ACCOUNT` TO 'sync'@'%'",
                "GRANT PROCESS ON *.* TO 'sync'@'%'",
            ],
        ),
        (
            "postgresql+psycopg://u@h/bill",
            [
                "GRANT USAGE ON SCHEMA \"public\" TO 'sync'@'%'",
                "GRANT SELECT ON \"public\".\"ACCOUNT\" TO 'sync'@'%'",
                "ALTER ROLE 'sync'@'%' SET default_transaction_read_only = on",
                "GRANT pg_monitor TO 'sync'@'%'",
            ],
        ),
    ],
)
def test_grants_are_select_only_plus_the_horizon_grant(url: str, expected: list[str]) -> None:
    assert adapter_for(url).grants("'sync'@'%'", [(None, "ACCOUNT")]) == expected


def test_oracle_and_db2_grants_name_the_horizon_views() -> None:
    oracle = adapter_for("oracle+oracledb://u@h/d").grants("SYNC", [("BILL", "ACCOUNT")])
    assert oracle[-2:] == [
        "GRANT SELECT ON SYS.V_$TRANSACTION TO SYNC",
        "GRANT SELECT ON SYS.V_$SESSION TO SYNC",
    ]
    db2 = adapter_for("db2+ibm_db://u@h/d").grants("SYNC", [("BILL", "ACCOUNT")])
    assert db2[-1] == "GRANT EXECUTE ON FUNCTION SYSPROC.MON_GET_UNIT_OF_WORK TO USER SYNC"
    ibmi = adapter_for("ibmi://u@h").grants("sync", [("BILL", "ACCOUNT")])
    assert ibmi[-1] == "CHGFCNUSG FCNID(QIBM_DB_SYSMON) USER(SYNC) USAGE(*ALLOWED)"


@pytest.mark.parametrize(
    ("precision", "scale", "expected"),
    [(12, 2, "FM9999999990.00"), (7, 0, "FM9999990"), (3, 3, "FM0.000")],
)
def test_oracle_decimal_format_prints_like_postgres_numeric(
    precision: int, scale: int, expected: str
) -> None:
    assert decimal_format(precision, scale) == expected
