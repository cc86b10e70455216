"""Schema drift on either side is named before anything loads: a source column retyped so
that its target cannot hold it exactly (``check`` and every run fail), a column dropped
from a warehouse entity table (set-up fails, naming it and the fix)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from billing_sync.cli import main
from billing_sync.config import ConfigError
from billing_sync.engine.sync import SyncEngine
from billing_sync.load.drift import WarehouseSchemaDrift
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now

pytestmark = pytest.mark.integration


def _config_file(databases: DatabaseUrls, state_dir: Path) -> Path:
    path = state_dir / "settings.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(state_dir),
                "source_url": databases.source,
                "warehouse_url": databases.warehouse,
                "cache_path": str(state_dir / "cache.duckdb"),
                "capture": {"delay_seconds": 0},
            }
        )
    )
    return path


def _watermarks(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT source_table, cursor_ts, cursor_key FROM billing_sync.watermark ORDER BY 1"
        ).fetchall()


def test_a_source_retyped_to_unbounded_numeric_fails_check_and_every_run(
    databases: DatabaseUrls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
    config = _config_file(databases, tmp_path)
    assert main(["--config", str(config), "check"]) == 0
    capsys.readouterr()
    # The biller widens AMOUNT from numeric(11,2) to unbounded numeric and stores 12.999.
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute('ALTER TABLE icoms."PAYMENT" ALTER COLUMN "AMOUNT" TYPE numeric')
        conn.execute(
            'UPDATE icoms."PAYMENT" SET "AMOUNT" = 12.999, "CHG_TIME" = "CHG_TIME"'
            ' WHERE "PAYMENT_NO" = (SELECT min("PAYMENT_NO") FROM icoms."PAYMENT")'
        )
    before = _watermarks(databases.warehouse)

    assert main(["--config", str(config), "check"]) == 2
    error = capsys.readouterr().err
    assert "column icoms.PAYMENT.AMOUNT: source type numeric does not fit target amount" in error
    assert "decimal(12,2)" in error and "(12.999 as 13.00)" in error

    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        with pytest.raises(ConfigError, match=r"icoms\.PAYMENT\.AMOUNT: source type numeric"):
            engine.sync_once()
    assert _watermarks(databases.warehouse) == before, "nothing moved"


def test_a_column_dropped_from_a_warehouse_entity_fails_setup_naming_it(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        conn.execute("ALTER TABLE billing.adjustment DROP COLUMN memo")

    with (
        SyncEngine.from_settings(settings) as engine,
        pytest.raises(WarehouseSchemaDrift) as failed,
    ):
        engine.setup()
    message = str(failed.value)
    assert "billing.adjustment.memo is missing (expected text)" in message
    assert 'ALTER TABLE billing."adjustment" ADD COLUMN "memo" text' in message
    assert "`billing-sync backfill icoms.ADJUSTMENT`" in message

    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        conn.execute('ALTER TABLE billing."adjustment" ADD COLUMN "memo" text')
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()  # the advice works
        engine.drain(until=source_now(databases.source))
