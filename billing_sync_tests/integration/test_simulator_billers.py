"""Both simulated billers against a real PostgreSQL: schema, seed, workload, stamps, EXPLAIN."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from billing_sync.config import CATALOG_DIR
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.billers import BILLERS, create_schema, seed, seed_if_empty
from billing_sync.simulator.clock import ICOMS_STAMP_SET, from_cyymmdd
from billing_sync.simulator.engine import Workload

pytestmark = pytest.mark.integration

AS_OF = datetime(2026, 6, 1)


@pytest.fixture
def conn(databases: DatabaseUrls) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(databases.source, autocommit=True) as connection:
        yield connection


def scalar(conn: psycopg.Connection[Any], query: str | sql.Composed, *params: Any) -> Any:
    row = conn.execute(query, params or None).fetchone()
    assert row is not None
    return row[0]


def catalog_tables(system: str) -> list[dict[str, Any]]:
    path = CATALOG_DIR / f"{system}.next.yaml"
    if not path.exists():
        path = CATALOG_DIR / f"{system}.yaml"
    tables: list[dict[str, Any]] = yaml.safe_load(path.read_text())["tables"]
    return tables


@pytest.mark.parametrize("system", ["icoms", "amdocs"])
def test_schema_is_idempotent_and_holds_what_the_catalog_maps(
    conn: psycopg.Connection[Any], system: str
) -> None:
    create_schema(conn, system=system)
    create_schema(conn, system=system)
    assert {m["table"] for m in catalog_tables(system)} == set(BILLERS[system].tables)
    for mapping in catalog_tables(system):
        names = {
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (system, mapping["table"]),
            )
        }
        used = set(mapping["key"]) | set(mapping.get("drop", []))
        cursor = mapping["cursor"]
        used |= set(cursor if isinstance(cursor, list) else [cursor])
        for column in mapping["columns"]:
            source = column.get("source")
            used |= set(source if isinstance(source, list) else [source] if source else [])
        assert used <= names, (mapping["table"], used - names)
        index = scalar(conn, "SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
                       "AND indexname = %s", system, f"{mapping['table']}_CHG_IX")  # fmt: skip
        keys = ", ".join(f'"{name}"' for name in mapping["key"])
        assert keys in index, index
        triggers = scalar(conn, "SELECT count(*) FROM information_schema.triggers "
                          "WHERE event_object_schema = %s", system)  # fmt: skip
        assert triggers == 0


@pytest.mark.parametrize("system", ["icoms", "amdocs"])
def test_seed_is_deterministic_and_only_fills_empty_tables(
    conn: psycopg.Connection[Any], system: str
) -> None:
    counts = seed(conn, accounts=120, as_of=AS_OF, system=system, schema=f"{system}_a")
    again = seed(conn, accounts=120, as_of=AS_OF, system=system, schema=f"{system}_b")
    assert counts == again and min(counts.values()) > 0
    anchor = BILLERS[system].anchor
    for name, definition in BILLERS[system].tables.items():
        order = sql.SQL(", ").join(map(sql.Identifier, definition.key))
        sums = [
            scalar(conn, sql.SQL("SELECT md5(string_agg(t::text, '|' ORDER BY {})) FROM {} t")
                   .format(order, sql.Identifier(schema, name)))
            for schema in (f"{system}_a", f"{system}_b")
        ]  # fmt: skip
        assert sums[0] == sums[1], name
    assert seed_if_empty(conn, accounts=120, system=system, schema=f"{system}_a") == {}
    with pytest.raises(ValueError, match=f"{system}_a.* already holds rows"):
        seed(conn, accounts=10, system=system, schema=f"{system}_a")
    assert scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(f"{system}_a", anchor))) == 120  # fmt: skip


def test_icoms_stamp_is_never_earlier_than_the_writing_transaction(
    conn: psycopg.Connection[Any], databases: DatabaseUrls
) -> None:
    seed(conn, accounts=20, system="icoms")
    with psycopg.connect(databases.source) as writer:
        started = scalar(writer, "SELECT (now() AT TIME ZONE 'America/Chicago')::timestamp(6)")
        time.sleep(0.3)
        writer.execute(
            f'UPDATE icoms."ACCOUNT" SET {ICOMS_STAMP_SET}, "CHG_USER" = %s'
            ' WHERE "ACCOUNT_NO" = %s',
            ("TESTER", "00000001"),
        )
        writer.commit()
    stamps = conn.execute(
        'SELECT "CHG_DATE", "CHG_TIME" FROM icoms."ACCOUNT" WHERE "CHG_USER" = %s', ("TESTER",)
    ).fetchall()
    assert stamps
    for date_value, time_value in stamps:
        stamp = from_cyymmdd(date_value, time_value)
        # Stamped with the second the writer's transaction started in, however late it wrote.
        assert stamp == started.replace(microsecond=0)


def test_both_billers_change_under_the_workload_and_stay_consistent(
    conn: psycopg.Connection[Any], databases: DatabaseUrls
) -> None:
    seed(conn, accounts=150, system="icoms")
    seed(conn, accounts=150, system="amdocs")
    workload = Workload(databases.source, rate=400, systems=("icoms", "amdocs"), seed=3)
    with workload:
        time.sleep(4)
    counts = workload.counts()
    for table in ("PAYMENT", "LEDGER", "ACCOUNT", "USAGE_EVENT", "CUST_SERVICE"):
        assert counts[f"icoms.{table}"] > 0, counts
    for table in ("PAYMENT", "BILLING_ACCOUNT", "USAGE", "SERVICE_AGREEMENT"):
        assert counts[f"amdocs.{table}"] > 0, counts
    assert 0.6 * 400 <= workload.achieved_rate() <= 1.15 * 400, workload.achieved_rate()
    assert workload.retried == 0
    # The ledger still explains every ICOMS balance (payments, bill runs, adjustments).
    off = scalar(conn, """
        SELECT count(*) FROM icoms."ACCOUNT" a LEFT JOIN (
            SELECT "SITE_ID", "ACCOUNT_NO", sum("TRAN_AMT") AS cents FROM icoms."LEDGER"
            GROUP BY 1, 2) l USING ("SITE_ID", "ACCOUNT_NO")
        WHERE a."AR_BALANCE" * 100 <> COALESCE(l.cents, 0)""")  # fmt: skip
    assert off == 0
    # New rows are stamped now, in local time, never in the future beyond the rounding.
    newest = scalar(
        conn, 'SELECT max(("CHG_DATE"::bigint * 1000000) + "CHG_TIME") FROM icoms."PAYMENT"'
    )
    local = scalar(conn, "SELECT to_char(now() AT TIME ZONE 'America/Chicago', 'YYYYMMDDHH24MISS')")
    assert abs(int(local) - 19_000_000_000_000 - newest) < 100  # within a minute, same clock


@pytest.mark.parametrize(
    ("system", "table", "cursor", "key"),
    [
        ("icoms", "PAYMENT", '"CHG_DATE", "CHG_TIME"', '"SITE_ID", "PAYMENT_NO"'),
        ("amdocs", "PAYMENT", 'COALESCE("SYS_UPDATE_DATE", "SYS_CREATION_DATE")', '"ENT_SEQ_NO"'),
    ],
)
def test_the_change_query_uses_the_capture_index(
    conn: psycopg.Connection[Any], system: str, table: str, cursor: str, key: str
) -> None:
    seed(conn, accounts=300, system=system)
    params: tuple[Any, ...] = (
        (1_260_101, 0, "001", 0) if system == "icoms" else (datetime(2026, 1, 1), 0)
    )
    low = ", ".join(["%s"] * len(params))
    plan = "\n".join(
        row[0]
        for row in conn.execute(
            f'EXPLAIN SELECT * FROM "{system}"."{table}" WHERE ({cursor}, {key}) > ({low}) '
            f"ORDER BY {cursor}, {key} LIMIT 1000",
            params,
        )
    )
    assert f"{table}_CHG_IX" in plan, plan


def test_rate_changes_stay_within_what_billers_charge(conn: psycopg.Connection[Any]) -> None:
    """Hours of rate changes on one service code (each up to +6%) never leave $1-$999.99:
    a rate that compounds without bound fails the product suite's range after a long run."""
    from billing_sync.simulator.icoms.fragments import render
    from billing_sync.simulator.icoms.operations import templates

    create_schema(conn, system="icoms")
    seed(conn, accounts=5, system="icoms")
    code = scalar(conn, 'SELECT "SERVICE_CODE" FROM "icoms"."SERVICE_CODE" WHERE "SITE_ID" = %s'
                  " ORDER BY 1 LIMIT 1", "001")  # fmt: skip
    statement = render(templates()["rate_change"], "icoms")
    for factor in ("1.06",) * 400 + ("0.95",) * 400:
        conn.execute(statement, {"site": "001", "code": code, "factor": factor, "user": "RATES"})
        rate = scalar(conn, 'SELECT "RATE" FROM "icoms"."SERVICE_CODE" WHERE "SITE_ID" = %s'
                      ' AND "SERVICE_CODE" = %s', "001", code)  # fmt: skip
        assert 100 <= rate <= 99_999
