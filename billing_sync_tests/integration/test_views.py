"""The serve views answer the same in PostgreSQL and DuckDB (issue 3).

First on rows of both billers built from their catalogs' entity columns (both share the
entity tables; some entities only one biller has), then after a real sync under the
workload, and again after the cache was lost and rebuilt from the warehouse.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pytest
import yaml

from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import EntityColumns, rows_to_arrow
from billing_sync.load.cache import Cache
from billing_sync.postgres import DatabaseUrls
from billing_sync.serve.views import (
    VIEWS,
    create_cache_views,
    create_views,
    create_warehouse_views,
)
from billing_sync.simulator import Workload
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now
from billing_sync_tests.integration.view_frames import assert_views_agree

pytestmark = pytest.mark.integration

CATALOGS = Path(__file__).parents[2] / "billing_sync" / "catalog"
ACCOUNTS = 40  # per biller; billing_account and customer rows are unique on their keys
STATUSES = {
    "billing_account": ["active", "suspended", "closed"],
    "product": ["active", "disconnected", "pending"],
    "payment": ["posted", "reversed"],
    "work_order": ["open", "scheduled", "completed", "cancelled"],
}


def catalog_entities() -> dict[str, tuple[dict[str, EntityColumns], set[str]]]:
    """Per entity: its columns as the catalogs map them, and the billers mapping it.

    Read straight from the packaged YAML: the entities and columns the billers have.
    """
    found: dict[str, tuple[dict[str, EntityColumns], set[str]]] = {}
    for system in ("icoms", "amdocs"):
        path = CATALOGS / f"{system}.yaml"
        for table in yaml.safe_load(path.read_text())["tables"]:
            columns = EntityColumns(
                table["entity"],
                tuple((column["target"], column["type"]) for column in table["columns"]),
            )
            known, systems = found.setdefault(table["entity"], ({}, set()))
            known.setdefault("columns", columns)
            systems.add(system)
    return found


def _value(
    rng: random.Random, entity: str, name: str, kind: str, system: str, i: int, account: int
) -> Any:
    if name == "site_id":  # ICOMS: two sites, odd accounts in one; Amdocs: its market
        return "AMD" if system == "amdocs" else f"00{1 + account % 2}"
    if name == "account_number":
        return f"{account:08d}"
    if name == "customer_id":
        if system == "icoms":
            return None
        return f"C{i}" if entity == "customer" else f"C{rng.randint(1, ACCOUNTS)}"
    if name == "status" and entity in STATUSES:
        return rng.choice(STATUSES[entity] + [None])
    if name.endswith("_number") and kind in ("integer", "bigint"):
        return i  # unique: the views break ties by these
    if rng.random() < 0.1:
        return None
    if kind == "text":
        return rng.choice(["a", "b", "card", "cash", "VID", "HSD", "Ann", "Lee"])
    if kind in ("integer", "bigint"):
        return rng.randint(1, 5)
    if kind == "date":
        return date(2026, 11, 1) + timedelta(days=rng.randint(0, 6))
    if kind == "timestamp":
        return datetime(2026, 11, 1) + timedelta(minutes=rng.randint(0, 9000))
    assert kind.startswith("decimal"), kind
    return Decimal(rng.randint(-2000, 30000)) / 100


def synthetic_rows(columns: EntityColumns, systems: set[str], seed: int) -> pa.Table:
    rng = random.Random(seed)
    records = []
    for system in sorted(systems):
        unique = columns.entity in ("billing_account", "customer")
        for i in range(1, ACCOUNTS + 1 if unique else 3 * ACCOUNTS + 1):
            account = i if unique else rng.randint(1, ACCOUNTS)
            business = [
                _value(rng, columns.entity, name, kind, system, i, account)
                for name, kind in columns.business
            ]
            lineage = [system, f"{system}-{i}", datetime(2026, 11, 1), i, rng.random() < 0.15]
            records.append((*business, *lineage, datetime.now(UTC), 1))
    return rows_to_arrow(records, columns)


def _create(conn: psycopg.Connection[Any], columns: EntityColumns, rows: pa.Table) -> None:
    definitions = ", ".join(columns.column_definitions())
    conn.execute("CREATE SCHEMA IF NOT EXISTS billing")
    conn.execute(
        f"CREATE TABLE {columns.table} ({definitions}, PRIMARY KEY (_source_system, _source_key))"
    )
    names = ", ".join(f'"{name}"' for name in columns.all)
    with conn.cursor() as cur, cur.copy(f"COPY {columns.table} ({names}) FROM STDIN") as copy:
        for record in rows.to_pylist():
            copy.write_row([record[name] for name in columns.all])


def test_views_answer_the_same_in_both_engines_for_both_billers(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    found = catalog_entities()
    entities = {entity: known["columns"] for entity, (known, _) in found.items()}
    cache = Cache(tmp_path / "cache.duckdb", entities)
    cache.setup()
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        con = duckdb.connect(str(cache.path))
        try:
            for n, (_entity, (known, systems)) in enumerate(sorted(found.items())):
                rows = synthetic_rows(known["columns"], systems, seed=n)
                _create(conn, known["columns"], rows)
                con.register("incoming", rows)
                con.execute(f"INSERT INTO {known['columns'].table} SELECT * FROM incoming")
                con.unregister("incoming")
            create_views(conn, con, entities)
            counts = assert_views_agree(conn, con)
            # One account's row reads that account's rows only: no CTE is materialized
            # (a CTE referenced twice is, and then every row of its table is read).
            plan = conn.execute(
                "EXPLAIN SELECT * FROM serve.account_360 WHERE source_system = 'icoms'"
                " AND site_id = '001' AND account_number = '00000001'"
            ).fetchall()
            assert not [line for (line,) in plan if "CTE Scan" in line], plan
            accounts = con.execute(
                "SELECT source_system, count(*) AS n, count(customer_type) AS customers,"
                " sum(open_work_orders) AS orders, count(last_payment_date) AS paid"
                " FROM serve.account_360 GROUP BY ALL ORDER BY ALL"
            ).fetchall()
            live = con.execute(
                "SELECT count(*) FROM billing.billing_account WHERE NOT _is_deleted"
            ).fetchall()[0][0]
            # Replacing identical views is a no-op (no locks taken on analysts' views).
            assert create_warehouse_views(conn, entities) == []
            assert create_cache_views(con, entities) == []
        finally:
            con.close()
    assert all(counts.values()), counts
    assert counts["account_360"] == live  # one row per live account, deleted ones left out
    if "amdocs" in found.get("billing_account", ({}, set()))[1]:
        by_system = {system: (n, customers, orders, paid) for system, n, customers, orders, paid
                     in accounts}  # fmt: skip
        assert set(by_system) == {"icoms", "amdocs"}, by_system
        assert by_system["amdocs"][1] > 0  # customers: Amdocs only
        assert by_system["amdocs"][2] == 0  # work orders: ICOMS only
        assert by_system["icoms"][1] == 0


def test_views_agree_after_a_sync_under_the_workload_and_a_rebuilt_cache(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    billers = ("icoms", "amdocs")
    seeded_source(databases, accounts=60, systems=billers)
    settings = settings_for(
        databases, tmp_path, capture={"delay_seconds": 0.3}, systems=list(billers)
    )
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
        with Workload(databases.source, rate=200, seed=8, systems=billers, hard_deletes=False):
            deadline = time.monotonic() + 4
            engine.run(tier=None, batches=1_000, poll_interval=0.3,
                       should_stop=lambda: time.monotonic() > deadline)  # fmt: skip
        engine.drain(until=source_now(databases.source), timeout=180)  # 23 tables
        with duckdb.connect(str(settings.resolved_cache_path), read_only=True) as con:
            counts = assert_views_agree(engine.warehouse.conn, con)
        assert counts["account_360"] > 0 and counts["payment_activity"] > 0
        with duckdb.connect(str(settings.resolved_cache_path), read_only=True) as con:
            by_biller = dict(
                con.execute(
                    "SELECT source_system, count(*) FROM serve.account_360 GROUP BY ALL"
                ).fetchall()
            )
        assert set(by_biller) == set(billers), by_biller

        settings.resolved_cache_path.unlink()  # lost: rebuilt from the warehouse, views too
        engine.catch_up_cache()
        with duckdb.connect(str(settings.resolved_cache_path), read_only=True) as con:
            assert assert_views_agree(engine.warehouse.conn, con) == counts
            listed = "SELECT view_name FROM duckdb_views() WHERE schema_name = 'serve'"
            names = {row[0] for row in con.execute(listed).fetchall()}
        assert names == {view.name for view in VIEWS}
