"""The data dictionary lands as comments in the warehouse and the cache (issue 14, item 7):
on set-up, on a cache file rebuilt from the warehouse, and again when a description
changes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.helpers import seeded_source, settings_for

pytestmark = pytest.mark.integration

COLUMN_COMMENT = (
    "SELECT col_description('billing.payment'::regclass, attnum) FROM pg_attribute"
    " WHERE attrelid = 'billing.payment'::regclass AND attname = %s"
)


def _warehouse_comment(url: str, column: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(COLUMN_COMMENT, (column,)).fetchone()
    return None if row is None else row[0]


def _cache_comment(path: Path, column: str) -> str | None:
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE schema_name = 'billing'"
            " AND table_name = 'payment' AND column_name = ?",
            [column],
        ).fetchone()
    return None if row is None else row[0]


def test_tables_and_columns_carry_the_dictionary_in_both_engines(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    billers = ("icoms", "amdocs")
    seeded_source(databases, accounts=3, systems=billers)
    settings = settings_for(databases, tmp_path, systems=list(billers))
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
    cache = settings.resolved_cache_path
    for comment in (_warehouse_comment(databases.warehouse, "amount"),
                    _cache_comment(cache, "amount")):  # fmt: skip
        assert comment is not None
        assert comment.startswith("Amount paid in dollars")
        assert "icoms PAYMENT.AMOUNT; amdocs PAYMENT.ACTV_AMT (float_money(2))" in comment
    for comment in (_warehouse_comment(databases.warehouse, "card_token"),
                    _cache_comment(cache, "card_token")):  # fmt: skip
        assert comment is not None and "Protection: keyed HMAC-SHA256 token" in comment
    with psycopg.connect(databases.warehouse) as conn:
        table = conn.execute("SELECT obj_description('billing.payment'::regclass)").fetchone()
        undescribed = conn.execute(
            "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c"
            " ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'billing' AND c.relkind = 'r' AND a.attnum > 0"
            " AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NULL"
        ).fetchall()
    assert table is not None and "Fed by icoms.PAYMENT, amdocs.PAYMENT" in table[0]
    assert undescribed == []

    cache.unlink()  # lost: the rebuilt file gets its comments with its tables
    with SyncEngine.from_settings(settings) as engine:
        engine.catch_up_cache()
    assert (_cache_comment(cache, "amount") or "").startswith("Amount paid in dollars")


def test_a_changed_description_reaches_both_engines_at_the_next_setup(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=3)
    catalogs = tmp_path / "catalog"
    catalogs.mkdir()
    packaged = Path(__file__).parents[2] / "billing_sync" / "catalog" / "icoms.yaml"
    original = packaged.read_text()
    (catalogs / "icoms.yaml").write_text(original)
    settings = settings_for(databases, tmp_path, catalog_dir=catalogs)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
    changed = original.replace(
        '"Amount paid in dollars (positive; reversals carry a status)."', '"Paid, it\'s USD."'
    )
    assert changed != original
    (catalogs / "icoms.yaml").write_text(changed)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
    for comment in (_warehouse_comment(databases.warehouse, "amount"),
                    _cache_comment(settings.resolved_cache_path, "amount")):  # fmt: skip
        assert (comment or "").startswith("Paid, it's USD. Source: icoms PAYMENT.AMOUNT")
