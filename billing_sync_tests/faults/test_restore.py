"""A source restored to an older copy, or shrunk: the run fails loudly, nothing changes."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from billing_sync.capture.regression import SourceRegressionError
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls, drop_database, with_database
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now

pytestmark = pytest.mark.integration


def _warehouse_rows(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT _source_key, _source_version, _batch_id FROM billing.payment"
            " UNION ALL SELECT _source_key, _source_version, _batch_id FROM billing.billing_account"
            " ORDER BY 1, 2"
        ).fetchall()


def test_a_source_restored_from_an_older_copy_fails_the_run(
    databases: DatabaseUrls, pg_server_url: str, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=30)
    backup = f"bk_{uuid.uuid4().hex[:8]}"
    source_db = urlsplit(databases.source).path.lstrip("/")
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(backup), sql.Identifier(source_db)
            )
        )
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    try:
        with SyncEngine.from_settings(settings) as engine:
            engine.setup()
            engine.drain(until=source_now(databases.source))
            with psycopg.connect(databases.source, autocommit=True) as conn:
                conn.execute(
                    'UPDATE "icoms"."PAYMENT" SET "PAY_STATUS" = \'R\','
                    f' {ICOMS_STAMP_SET} WHERE "PAYMENT_NO" % 4 = 0'
                )
            engine.drain(until=source_now(databases.source))
        before = _warehouse_rows(databases.warehouse)

        restored = settings.model_copy(
            update={"source_url": with_database(databases.source, backup)}
        )
        with (
            SyncEngine.from_settings(restored) as engine,
            pytest.raises(SourceRegressionError) as failure,
        ):
            engine.sync_once("priority")
        message = str(failure.value)
        assert "icoms.PAYMENT" in message and "below the committed watermark" in message
        assert "billing-sync rebase icoms.PAYMENT" in message
        assert _warehouse_rows(databases.warehouse) == before
    finally:
        drop_database(pg_server_url, backup)


def test_a_source_table_that_shrank_fails_the_run(databases: DatabaseUrls, tmp_path: Path) -> None:
    seeded_source(databases, accounts=40)
    settings = settings_for(
        databases, tmp_path,
        capture={"delay_seconds": 0, "shrink_check_interval_seconds": 0,
                 "max_shrink_fraction": 0.1},
    )  # fmt: skip
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
        with psycopg.connect(databases.source, autocommit=True) as conn:
            # Hard deletes move no change timestamp: only the row count betrays them.
            conn.execute('DELETE FROM "icoms"."PAYMENT" WHERE "PAYMENT_NO" % 2 = 0')
        before = _warehouse_rows(databases.warehouse)
        with pytest.raises(SourceRegressionError, match="shrank"):
            engine.sync_once("priority")
        assert _warehouse_rows(databases.warehouse) == before
