"""``verify`` and hard-delete detection on the ICOMS biller on MariaDB (the PostgreSQL
versions are in integration/test_verify.py): the source hashes its rows in MariaDB's SQL
by the engine-neutral contract, the warehouse its stored form by the same contract, and
the key-range sums compare exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from billing_sync.engine.sync import SyncEngine, gone_rows
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.deletes import apply_hard_deletes
from billing_sync.reconcile.verify import DeleteCapExceeded, run_verify, verify_table
from billing_sync.simulator import mariadb
from billing_sync_tests.integration.helpers import assert_parity
from billing_sync_tests.integration.test_mariadb_source import mariadb_icoms, mariadb_now
from billing_sync_tests.mysql_support import mysql_database, mysql_server

__all__ = ["mysql_database", "mysql_server"]

pytestmark = [pytest.mark.integration]


def _source(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = mariadb.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            rows = list(cur.fetchall())
        conn.commit()
        return rows
    finally:
        conn.close()


def _flags(url: str, keys: list[str]) -> list[tuple[str, bool]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT _source_key, _is_deleted FROM billing.payment"
            " WHERE _source_system = 'icoms' AND _source_key = ANY(%s) ORDER BY 1",
            (keys,),
        ).fetchall()
    return [(key, bool(flag)) for key, flag in rows]


def test_verify_on_mariadb_finds_a_change_behind_the_watermark_and_hard_deletes_and_repairs(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, url = mariadb_icoms(databases, mysql_database, tmp_path, accounts=40)
    database = mysql_database.database
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=mariadb_now(url), timeout=120)
        catalog = engine.catalogs[0]
        # Every table of the biller hashes equal on both engines after a drain: dates,
        # packed stamps, implied decimals, trimmed CHAR, soft deletes, composite keys.
        for mapping in catalog.tables:
            clean = verify_table(engine, catalog, mapping, repair=False, check_cache=False)
            assert clean.equal, (mapping.table, clean.warehouse.summary())
            assert clean.source_rows == clean.warehouse_rows, mapping.table
        payment = catalog.by_table["PAYMENT"]

        keys = _source(url, f"SELECT `SITE_ID`, `PAYMENT_NO` FROM `{database}`.`PAYMENT`"
                            " ORDER BY `SITE_ID`, `PAYMENT_NO`")  # fmt: skip
        assert len(keys) > 20
        changed, gone = keys[7], keys[3:6]
        # Behind the watermark: a value changed without its stamp moving (a DBA's fix),
        # which no watermark query can see; and three rows deleted outright.
        _source(url, f"UPDATE `{database}`.`PAYMENT` SET `AMOUNT` = `AMOUNT` + 1000"
                     " WHERE `SITE_ID` = %s AND `PAYMENT_NO` = %s", changed)  # fmt: skip
        for key in gone:
            _source(url, f"DELETE FROM `{database}`.`PAYMENT`"
                         " WHERE `SITE_ID` = %s AND `PAYMENT_NO` = %s", key)  # fmt: skip
        assert engine.sync_once() is not None  # the tail sees none of it

        found = verify_table(engine, catalog, payment, repair=False)
        changed_key = f"{changed[0].rstrip()}|{changed[1]}"
        gone_keys = sorted(f"{site.rstrip()}|{number}" for site, number in gone)
        assert found.warehouse.stale == [changed_key]
        assert found.warehouse.extra == gone_keys
        assert not found.warehouse.missing and found.remaining == 4
        shrink = gone_rows(engine, catalog, payment)  # the shrink guard's comparison
        assert shrink is not None and shrink.rows == 3

        report: list[str] = []
        assert run_verify(engine, ["icoms.PAYMENT"], repair=True, echo=report.append) == 0
        text = "\n".join(report)
        assert "repaired: 0 missing, 1 stale" in text and "3 flagged deleted" in text, text
        assert _flags(databases.warehouse, gone_keys) == [(key, True) for key in gone_keys]
        again = verify_table(engine, catalog, payment, repair=False)
        assert again.equal and again.warehouse.total == 0, again.warehouse.summary()
        assert_parity(engine)


def test_hard_deletes_on_mariadb_are_flagged_after_a_drain(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, url = mariadb_icoms(databases, mysql_database, tmp_path, accounts=30)
    database = mysql_database.database
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=mariadb_now(url), timeout=120)
        gone = _source(url, f"SELECT `SITE_ID`, `PAYMENT_NO` FROM `{database}`.`PAYMENT`"
                            " ORDER BY `PAYMENT_NO` DESC LIMIT 2")  # fmt: skip
        for key in gone:
            _source(url, f"DELETE FROM `{database}`.`PAYMENT`"
                         " WHERE `SITE_ID` = %s AND `PAYMENT_NO` = %s", key)  # fmt: skip
        flagged = [entry for entry in apply_hard_deletes(engine) if entry.found]
        assert [(e.table, e.found, e.flagged, e.left_alone) for e in flagged] == [
            ("icoms.PAYMENT", 2, 2, None)
        ]
        keys = sorted(f"{site.rstrip()}|{number}" for site, number in gone)
        assert _flags(databases.warehouse, keys) == [(key, True) for key in keys]
        assert not [entry for entry in apply_hard_deletes(engine) if entry.found]


def test_a_mass_delete_on_mariadb_above_the_cap_refuses_and_changes_nothing(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, url = mariadb_icoms(databases, mysql_database, tmp_path, accounts=30)
    table = f"`{mysql_database.database}`.`PAYMENT`"
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=mariadb_now(url), timeout=120)
        catalog = engine.catalogs[0]
        payment = catalog.by_table["PAYMENT"]
        ((gone,),) = _source(url, f"SELECT count(*) FROM {table} WHERE `PAYMENT_NO` MOD 5 = 0")
        _source(url, f"DELETE FROM {table} WHERE `PAYMENT_NO` MOD 5 = 0")
        assert gone > 0
        with psycopg.connect(databases.warehouse) as conn:
            before = conn.execute("SELECT * FROM billing.payment ORDER BY 1, 2").fetchall()
            with pytest.raises(DeleteCapExceeded) as refused:
                verify_table(engine, catalog, payment, repair=True)
            assert f"{gone} warehouse rows are no longer in the source" in str(refused.value)
            assert "Nothing was changed" in str(refused.value)
            assert conn.execute("SELECT * FROM billing.payment ORDER BY 1, 2").fetchall() == before
        allowed = verify_table(engine, catalog, payment, repair=True, max_delete_fraction=0.5)
        assert allowed.deleted == gone and allowed.remaining == 0
