"""The simulated ICOMS biller against a real PostgreSQL: schema, seed, workload, EXPLAIN."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from billing_sync.config import load_catalog
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import Workload, create_schema, seed, seed_if_empty
from billing_sync.simulator.schema import TABLES

pytestmark = pytest.mark.integration

AS_OF = datetime(2025, 6, 1)
CHILDREN = ("CUST_SERVICE", "STATEMENT", "PAYMENT")


@pytest.fixture
def conn(databases: DatabaseUrls) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(databases.source, autocommit=True) as connection:
        yield connection


def scalar(conn: psycopg.Connection[Any], query: str | sql.Composed, *params: Any) -> Any:
    row = conn.execute(query, params or None).fetchone()
    assert row is not None
    return row[0]


def table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}").format(sql.Identifier(schema, name))


def checksum(conn: psycopg.Connection[Any], schema: str) -> dict[str, str]:
    sums = {}
    for name, definition in TABLES.items():
        query = sql.SQL("SELECT md5(string_agg(t::text, '|' ORDER BY {})) FROM {} t").format(
            sql.SQL(", ").join(sql.Identifier(column) for column in definition.key),
            table(schema, name),
        )
        sums[name] = scalar(conn, query)
    return sums


def orphans(conn: psycopg.Connection[Any], schema: str) -> dict[str, int]:
    """Rows of the child tables whose ACCOUNT does not exist."""
    found = {}
    for child in CHILDREN:
        query = sql.SQL(
            "SELECT count(*) FROM {} c WHERE NOT EXISTS (SELECT 1 FROM {} a "
            'WHERE a."SITE_ID" = c."SITE_ID" AND a."ACCOUNT_NO" = c."ACCOUNT_NO")'
        ).format(table(schema, child), table(schema, "ACCOUNT"))
        found[child] = scalar(conn, query)
    return found


def test_create_schema_is_idempotent_and_matches_the_catalog(
    conn: psycopg.Connection[Any],
) -> None:
    create_schema(conn)
    create_schema(conn)  # again: no error, nothing duplicated

    catalog = load_catalog("icoms")
    for mapping in catalog.tables:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'icoms' AND table_name = %s ORDER BY ordinal_position",
            (mapping.table,),
        ).fetchall()
        assert [name for (name,) in columns] == [column.source for column in mapping.columns]
        key = conn.execute(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)",
            (f'icoms."{mapping.table}"',),
        ).fetchall()
        assert [name for (name,) in key] == mapping.key
        index = scalar(
            conn,
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'icoms' AND indexname = %s",
            f"{mapping.table}_CHG_IX",
        )
        keys = ", ".join(f'"{name}"' for name in mapping.key)
        assert f'(COALESCE("CHG_TS", "CRT_TS"), {keys})' in index

    types = dict(
        conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = 'icoms.\"PAYMENT\"'::regclass AND a.attnum > 0"
        ).fetchall()
    )
    assert types == {
        "SITE_ID": "character(3)",
        "PAYMENT_NO": "bigint",
        "ACCOUNT_NO": "character(9)",
        "PAY_DATE": "date",
        "AMOUNT": "numeric(12,2)",
        "PAY_METHOD": "character(2)",
        "PAY_STATUS": "character(1)",
        "CRT_TS": "timestamp(6) without time zone",
        "CHG_TS": "timestamp(6) without time zone",
        "CHG_USER": "character varying(10)",
        "REC_STATUS": "character(1)",
    }
    assert scalar(conn, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'icoms'") == 9
    assert (
        scalar(
            conn,
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'icoms' AND NOT t.tgisinternal",
        )
        == 0
    )


def test_seed_is_deterministic_with_realistic_ratios(conn: psycopg.Connection[Any]) -> None:
    counts = seed(conn, accounts=1000, seed=7, schema="icoms_a", as_of=AS_OF)
    again = seed(conn, accounts=1000, seed=7, schema="icoms_b", as_of=AS_OF)
    other = seed(conn, accounts=1000, seed=8, schema="icoms_c", as_of=AS_OF)

    assert counts == again
    assert checksum(conn, "icoms_a") == checksum(conn, "icoms_b")
    assert checksum(conn, "icoms_a") != checksum(conn, "icoms_c")
    assert other["ACCOUNT"] == 1000
    for name, rows in counts.items():
        assert (
            scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(table("icoms_a", name))) == rows
        )

    assert counts["ACCOUNT"] == 1000
    assert 2.6 <= counts["CUST_SERVICE"] / 1000 <= 3.5
    assert 5.0 <= counts["STATEMENT"] / 1000 <= 7.0
    assert 7.0 <= counts["PAYMENT"] / 1000 <= 9.0

    nulls = total = 0
    for name in TABLES:
        t = table("icoms_a", name)
        row = conn.execute(
            sql.SQL(
                'SELECT count(*), count(*) FILTER (WHERE "CHG_TS" IS NULL), '
                'count(*) FILTER (WHERE "CHG_TS" < "CRT_TS"), '
                'min("CRT_TS"), max(COALESCE("CHG_TS", "CRT_TS")), '
                'count(*) FILTER (WHERE "CHG_USER" IS NULL) FROM {}'
            ).format(t)
        ).fetchone()
        assert row is not None
        rows, null_chg, backwards, oldest, newest, no_user = row
        total, nulls = total + rows, nulls + null_chg
        assert backwards == 0, name
        assert oldest >= AS_OF - timedelta(days=731), name
        assert newest < AS_OF, name
        assert no_user == 0, name
        # microsecond precision, not whole seconds
        fractional = sql.SQL(
            'SELECT count(*) FROM {} WHERE extract(microseconds FROM "CRT_TS") % 1000000 <> 0'
        ).format(t)
        assert scalar(conn, fractional) > rows // 2
    assert 0.25 <= nulls / total <= 0.35

    statuses = dict(conn.execute(
        'SELECT "ACCT_STATUS", count(*) FROM icoms_a."ACCOUNT" GROUP BY 1'
    ).fetchall())  # fmt: skip
    assert statuses["A"] > 800 and statuses["S"] > 0 and statuses["C"] > 0
    assert scalar(conn, 'SELECT count(*) FROM icoms_a."ACCOUNT" WHERE "ACCT_NAME" = \'\'') > 0
    assert scalar(conn, 'SELECT count(*) FROM icoms_a."ACCOUNT" WHERE "ACCT_NAME" IS NULL') > 0
    assert (
        scalar(
            conn, 'SELECT count(*) FROM icoms_a."ACCOUNT" WHERE "ACCT_NAME" ~ \'[^\\x01-\\x7e]\''
        )
        > 0
    )
    assert scalar(conn, 'SELECT min("BILL_CYCLE") FROM icoms_a."ACCOUNT"') >= 1
    assert scalar(conn, 'SELECT max("BILL_CYCLE") FROM icoms_a."ACCOUNT"') <= 28
    assert (
        scalar(conn, 'SELECT count(*) FROM icoms_a."ACCOUNT" WHERE "ACCOUNT_NO" !~ \'^[0-9]{9}$\'')
        == 0
    )
    assert scalar(conn, 'SELECT count(DISTINCT "SITE_ID") FROM icoms_a."ACCOUNT"') == 5
    methods = {m for (m,) in conn.execute('SELECT DISTINCT "PAY_METHOD" FROM icoms_a."PAYMENT"')}
    assert methods == {"CA", "CK", "CC", "AC"}
    pay = dict(conn.execute('SELECT "PAY_STATUS", count(*) FROM icoms_a."PAYMENT" GROUP BY 1'))
    assert set(pay) == {"P", "R"} and pay["R"] < pay["P"] * 0.05
    assert (
        scalar(
            conn,
            'SELECT count(*) FROM icoms_a."CUST_SERVICE" '
            'WHERE ("SVC_STATUS" = \'D\') <> ("STOP_DATE" IS NOT NULL)',
        )
        == 0
    )
    # A statement run stamps all of its statements with one CRT_TS.
    assert (
        scalar(
            conn,
            'SELECT max(n) FROM (SELECT count(*) n FROM icoms_a."STATEMENT" GROUP BY "CRT_TS") s',
        )
        > 1
    )
    assert orphans(conn, "icoms_a") == dict.fromkeys(CHILDREN, 0)

    with pytest.raises(ValueError, match="already holds rows"):
        seed(conn, accounts=10, schema="icoms_a")
    assert seed_if_empty(conn, accounts=10, schema="icoms_a") == {}
    assert seed_if_empty(conn, accounts=10, schema="icoms_d")["ACCOUNT"] == 10


def test_workload_changes_all_tables_stamped_with_transaction_start(
    databases: DatabaseUrls, conn: psycopg.Connection[Any]
) -> None:
    seed(conn, accounts=1000)
    started = scalar(conn, "SELECT localtimestamp")
    rate = 500
    workload = Workload(databases.source, rate=rate)
    workload.start()
    assert workload.is_running
    time.sleep(3)
    before_stop = time.monotonic()
    workload.stop()
    assert time.monotonic() - before_stop < 2
    assert not workload.is_running

    counts = workload.counts()
    assert all(counts[name] > 0 for name in TABLES), counts
    assert 0.75 * rate <= workload.achieved_rate() <= 1.1 * rate, workload.achieved_rate()
    time.sleep(0.2)
    assert workload.counts() == counts  # nothing after stop()

    changed_rows = 0
    for name in TABLES:
        t = table("icoms", name)
        row = conn.execute(
            sql.SQL(
                'SELECT count(*), count(*) FILTER (WHERE "CHG_TS" IS NULL OR "CHG_TS" < "CRT_TS"), '
                'count(*) FILTER (WHERE "CHG_USER" IS NULL) FROM {} '
                'WHERE COALESCE("CHG_TS", "CRT_TS") >= %s'
            ).format(t),
            (started,),
        ).fetchone()
        assert row is not None
        rows, bad_ts, no_user = row
        assert 0 < rows <= counts[name], name
        assert bad_ts == 0 and no_user == 0, name
        changed_rows += rows
        # Inserted rows carry CRT_TS = CHG_TS unless changed again later.
        inserted_equal = scalar(
            conn,
            sql.SQL(
                'SELECT count(*) FILTER (WHERE "CHG_TS" = "CRT_TS") FROM {} WHERE "CRT_TS" >= %s'
            ).format(t),
            started,
        )
        if name in ("PAYMENT", "STATEMENT"):
            assert inserted_equal > 0, name

    # All rows written by one transaction (same xmin) share one CHG_TS: the transaction's
    # start time, not the clock at each row.
    writes = sql.SQL(" UNION ALL ").join(
        sql.SQL('SELECT xmin::text AS xid, "CHG_TS" FROM {} WHERE "CHG_TS" >= %(t)s').format(
            table("icoms", name)
        )
        for name in TABLES
    )
    per_transaction = conn.execute(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE stamps > 1), max(rows) FROM ("
            'SELECT xid, count(DISTINCT "CHG_TS") AS stamps, count(*) AS rows FROM ({}) w '
            "GROUP BY xid) x"
        ).format(writes),
        {"t": started},
    ).fetchone()
    assert per_transaction is not None
    mixed, biggest = per_transaction
    assert mixed == 0
    assert biggest > 2  # statement runs write many rows in one transaction

    assert orphans(conn, "icoms") == dict.fromkeys(CHILDREN, 0)
    assert changed_rows > 0.5 * 3 * rate


def test_workload_stop_is_prompt_and_restart_is_refused(databases: DatabaseUrls) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        seed(conn, accounts=200)
    workload = Workload(databases.source, rate=5000)
    with workload:
        time.sleep(0.5)
    assert sum(workload.counts().values()) > 0
    with pytest.raises(RuntimeError):
        workload.start()
    started = time.monotonic()
    workload.stop()  # a second stop is harmless
    assert time.monotonic() - started < 0.5


def capture_plan(
    conn: psycopg.Connection[Any], name: str, backlog: int
) -> tuple[sql.Composed, str, int]:
    """EXPLAIN the capture query of ``name`` from a cursor ``backlog`` rows below the top."""
    definition = TABLES[name]
    key = sql.SQL(", ").join(sql.Identifier(column) for column in definition.key)
    change_ts = sql.SQL('COALESCE("CHG_TS","CRT_TS")')
    t = table("icoms", name)
    cursor = conn.execute(
        sql.SQL("SELECT {ts}, {key} FROM {t} ORDER BY {ts} DESC, {key} LIMIT 1 OFFSET %s").format(
            ts=change_ts, key=key, t=t
        ),
        (backlog,),
    ).fetchone()
    assert cursor is not None
    horizon = scalar(conn, sql.SQL("SELECT max({}) FROM {}").format(change_ts, t))
    params = (*cursor, horizon + timedelta(seconds=1))
    query = sql.SQL(
        "SELECT * FROM {t} WHERE ({ts}, {key}) > ({cursor}) AND {ts} < %s "
        "ORDER BY {ts}, {key} LIMIT 1000"
    ).format(
        t=t, ts=change_ts, key=key, cursor=sql.SQL(", ").join(sql.Placeholder() for _ in cursor)
    )
    plan = "\n".join(line for (line,) in conn.execute(sql.SQL("EXPLAIN {}").format(query), params))
    return query, plan, len(conn.execute(query, params).fetchall())


def test_capture_query_uses_the_change_index(conn: psycopg.Connection[Any]) -> None:
    seed(conn, accounts=3000)
    assert scalar(conn, 'SELECT count(*) FROM icoms."PAYMENT"') >= 20_000
    for name in TABLES:
        conn.execute(sql.SQL("ANALYZE {}").format(table("icoms", name)))
        index = f'"{name}_CHG_IX"'

        # Catching up: more rows above the cursor than one batch. The index gives them
        # in cursor order and the scan stops after LIMIT rows (no Sort).
        total = scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(table("icoms", name)))
        query, plan, rows = capture_plan(conn, name, backlog=min(3000, total * 2 // 3))
        assert rows == 1000
        assert f"Index Scan using {index}" in plan or f"Index Only Scan using {index}" in plan, plan
        if name == "PAYMENT":  # the query exactly as the capture writes it
            assert query.as_string(conn) == (
                'SELECT * FROM "icoms"."PAYMENT" WHERE (COALESCE("CHG_TS","CRT_TS"), "SITE_ID", '
                '"PAYMENT_NO") > (%s, %s, %s) AND COALESCE("CHG_TS","CRT_TS") < %s '
                'ORDER BY COALESCE("CHG_TS","CRT_TS"), "SITE_ID", "PAYMENT_NO" LIMIT 1000'
            )

        # At the tail, fewer rows than a batch: the planner may prefer a bitmap scan of the
        # same index and a sort of those few rows; never a scan of the table.
        _, plan, rows = capture_plan(conn, name, backlog=300)
        assert rows == 300
        assert f"Index Scan using {index}" in plan or f"Index Scan on {index}" in plan, plan
        assert "Seq Scan" not in plan, plan
