"""Quarantine (DESIGN §6): bad rows wait aside with their reasons, the rest of the batch
loads and the watermark advances; a fix or a late parent releases them; too many bad rows
fail the batch whole; on-call lists, explains and releases rows from the CLI."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from billing_sync.cli import main
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET, ICOMS_STAMP_VALUES
from billing_sync.validate import quarantine, quarantine_ops
from billing_sync.validate.report import BatchValidationError
from billing_sync_tests.integration.helpers import (
    assert_parity,
    drained_engine,
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration

FIRST_PAYMENTS = 'SELECT "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT" ORDER BY 1, 2 LIMIT {n}'


def _payment_keys(url: str, n: int) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(FIRST_PAYMENTS.format(n=n)).fetchall()
    return [f"{site}|{number}" for site, number in rows]


def _warehouse(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_bad_rows_wait_in_quarantine_while_the_rest_loads_then_a_fix_releases_them(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with drained_engine(databases, tmp_path, accounts=30, capture={"delay_seconds": 0}) as engine:
        payment = engine.catalogs[0].by_table["PAYMENT"]
        before = engine.warehouse.watermark("icoms", payment)
        bad, good = _payment_keys(databases.source, 6)[:2], _payment_keys(databases.source, 6)[2:]
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = -5, {ICOMS_STAMP_SET}'
                f' WHERE ("SITE_ID", "PAYMENT_NO") IN ({FIRST_PAYMENTS.format(n=2)})'
            )
            conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = 77, {ICOMS_STAMP_SET}'
                f' WHERE ("SITE_ID", "PAYMENT_NO") IN ({FIRST_PAYMENTS.format(n=6)})'
                ' AND "AMOUNT" > 0'
            )
        next_second()
        batch = engine.sync_table(engine.catalogs[0], payment)

        # The good rows loaded, the watermark moved, the bad rows are in quarantine.
        assert batch.quarantined == 2 and batch.updated == 4
        assert engine.warehouse.watermark("icoms", payment) != before
        amounts = dict(
            _warehouse(
                databases.warehouse,
                "SELECT _source_key, amount FROM billing.payment WHERE _source_key = ANY(%s)",
                bad + good,
            )
        )
        assert all(amounts[key] == 77 for key in good)
        assert all(amounts[key] != -5 for key in bad)  # the last good version stays
        lines = quarantine_ops.entries(engine.warehouse.conn, entity="payment")
        assert sorted(line.source_key for line in lines) == sorted(bad)
        line = lines[0]
        assert line.status == "open" and line.batch_id == batch.batch_id
        assert line.expectation == "expect_column_values_to_be_between(amount)"
        assert line.offending_value == "-5.00"
        assert line.first_seen <= line.last_seen
        assert batch.validation is not None and not batch.validation.success

        # The biller corrects the rows: the next batch releases them.
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = 5, {ICOMS_STAMP_SET} WHERE "AMOUNT" < 0'
            )
        next_second()
        fixed = engine.sync_table(engine.catalogs[0], payment)
        assert fixed.quarantined == 0 and fixed.updated == 2
        assert quarantine_ops.entries(engine.warehouse.conn, entity="payment") == []
        released = quarantine_ops.entries(
            engine.warehouse.conn, entity="payment", statuses=["released"]
        )
        assert {(r.source_key, r.release_reason) for r in released} == {
            (key, "fixed") for key in bad
        }
        engine.drain(until=source_now(databases.source))
        assert_parity(engine)


def test_an_orphan_waits_for_its_account_and_is_released_with_it(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with drained_engine(databases, tmp_path, accounts=20, capture={"delay_seconds": 0}) as engine:
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                'INSERT INTO "icoms"."PAYMENT" ("SITE_ID", "PAYMENT_NO", "ACCOUNT_NO", "PAY_DATE",'
                ' "AMOUNT", "PAY_METHOD", "PAY_STATUS", "CRT_DATE", "CRT_TIME", "CHG_DATE",'
                ' "CHG_TIME", "CHG_USER", "REC_STATUS") VALUES (\'001\', 990001, \'000099999\','
                f" 1261125, 12.5, 'CA', 'P', {ICOMS_STAMP_VALUES}, 'T', 'A')"
            )
        payment = engine.catalogs[0].by_table["PAYMENT"]
        next_second()
        batch = engine.sync_table(engine.catalogs[0], payment)
        assert batch.quarantined == 1
        [line] = quarantine_ops.entries(engine.warehouse.conn, entity="payment")
        assert line.source_key == "001|990001" and line.status == "open"
        assert line.expectation.startswith("expect_parent_to_exist(billing_account")
        assert line.parent_keys == {"billing_account": "001|000099999"}
        assert "billing_account 001|000099999" in quarantine_ops.explain(line)

        # Still no account: the next batch leaves it where it is.
        assert engine.sync_table(engine.catalogs[0], payment).released == 0

        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                'INSERT INTO "icoms"."ACCOUNT" ("SITE_ID", "ACCOUNT_NO", "ACCT_NAME",'
                ' "ACCT_TYPE", "ACCT_STATUS", "BILL_CYCLE", "AR_BALANCE", "CREDIT_CLASS",'
                ' "OPEN_DATE", "CRT_DATE", "CRT_TIME", "CHG_DATE", "CHG_TIME", "CHG_USER",'
                " \"REC_STATUS\") VALUES ('001', '000099999', 'Late Parent', 'R', 'A', 3, 0, 'A',"
                f" 1261125, {ICOMS_STAMP_VALUES}, 'T', 'A')"
            )
        next_second()
        results = {b.table: b for b in engine.sync_once()}
        assert results["PAYMENT"].released == 1
        assert quarantine_ops.entries(engine.warehouse.conn) == []
        [row] = _warehouse(
            databases.warehouse,
            "SELECT amount FROM billing.payment WHERE _source_key = '001|990001'",
        )
        assert float(row[0]) == 12.5  # type: ignore[arg-type]
        assert_parity(engine)  # the cache got the released row too


def test_too_many_bad_rows_fail_the_batch_whole_and_keep_the_watermark(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with drained_engine(databases, tmp_path, accounts=30, capture={"delay_seconds": 0}) as engine:
        payment = engine.catalogs[0].by_table["PAYMENT"]
        before = engine.warehouse.watermark("icoms", payment)
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = -5, {ICOMS_STAMP_SET}'
                f' WHERE ("SITE_ID", "PAYMENT_NO") IN ({FIRST_PAYMENTS.format(n=8)})'
            )
        next_second()
        with pytest.raises(BatchValidationError) as failure:
            engine.sync_table(engine.catalogs[0], payment)
        message = str(failure.value)
        assert "expect_column_values_to_be_between(amount)" in message
        assert "8 of 8 rows are bad, over the payment threshold" in message
        assert engine.warehouse.watermark("icoms", payment) == before
        assert quarantine_ops.entries(engine.warehouse.conn) == []  # nothing committed


def test_cli_lists_explains_and_releases(
    databases: DatabaseUrls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
        [key] = _payment_keys(databases.source, 1)
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                'UPDATE "icoms"."PAYMENT" SET "PAY_DATE" = 2991231,'  # 2199-12-31
                f" {ICOMS_STAMP_SET}"
                f' WHERE ("SITE_ID", "PAYMENT_NO") IN ({FIRST_PAYMENTS.format(n=1)})'
            )
        next_second()
        engine.sync_once()
    config = tmp_path / "settings.yaml"
    import yaml

    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", by_alias=True)))
    base = ["--config", str(config), "quarantine"]

    assert main([*base, "list"]) == 0
    listed = capsys.readouterr().out
    assert key in listed and "expect_column_values_to_be_between(payment_date)" in listed

    assert main([*base, "explain", "payment", key]) == 0
    explained = capsys.readouterr().out
    assert "2199-12-31" in explained and "billing-sync quarantine release payment" in explained

    assert main([*base, "release", "payment", key]) == 0
    assert "released 1 payment row(s)" in capsys.readouterr().out
    [row] = _warehouse(
        databases.warehouse,
        "SELECT payment_date::text FROM billing.payment WHERE _source_key = %s",
        key,
    )
    assert row[0] == "2199-12-31"
    assert main([*base, "list"]) == 0
    assert "the quarantine is empty" in capsys.readouterr().out
    with SyncEngine.from_settings(settings) as engine:
        engine.catch_up_cache()
        assert_parity(engine)  # released by hand: warehouse and cache equal the source


@pytest.mark.parametrize(
    "asked",
    [
        ["001|1", "001|2", "009|9"],  # joined into one text, split by the server
        ["001|1"],  # one key: sent as a list
        ["", "001|1", "009|9"],  # an empty key survives the split
        ["odd\x1fkey", "001|1"],  # a key holding the separator: sent as a list
    ],
)
def test_parent_lookup_finds_exactly_the_keys_present(
    databases: DatabaseUrls, asked: list[str]
) -> None:
    present = {"001|1", "001|2", "", "odd\x1fkey"}
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS billing")
        conn.execute("DROP TABLE IF EXISTS billing.lookup_probe")
        conn.execute("CREATE TABLE billing.lookup_probe (_source_system text, _source_key text)")
        for key in present:
            conn.execute("INSERT INTO billing.lookup_probe VALUES ('icoms', %s)", (key,))
        conn.execute("INSERT INTO billing.lookup_probe VALUES ('amdocs', '009|9')")
        found = quarantine._in_warehouse(conn, "icoms", "lookup_probe", asked)
        conn.execute("DROP TABLE billing.lookup_probe")
    assert found == present & set(asked)
