"""The parity check: verify --repair per entity in a Dagster run, ERROR when the cap refuses."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from billing_sync.config import load_catalog, load_settings
from billing_sync.definitions import defs
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.helpers import source_now

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


def _parity_run(
    instance: dg.DagsterInstance, resource: BillingSyncResource
) -> dict[str, dg.AssetCheckEvaluation]:
    result = (
        defs()
        .resolve_job_def("parity_checks_job")
        .execute_in_process(instance=instance, resources={"billing_sync": resource})
    )
    return {
        e.asset_key.to_user_string(): e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "parity"
    }


def test_parity_check_repairs_hard_deletes_and_errors_when_the_cap_refuses(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    with SyncEngine.from_settings(load_settings(path=settings_file)) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
    resource = BillingSyncResource(config_file=str(settings_file))
    with psycopg.connect(databases.source) as conn:
        conn.execute(
            'DELETE FROM icoms."PAYMENT" WHERE ctid IN'
            ' (SELECT ctid FROM icoms."PAYMENT" ORDER BY "PAYMENT_NO" LIMIT 2)'
        )
    with dg.instance_for_test() as instance:
        first = _parity_run(instance, resource)
        entities = {m.entity for m in load_catalog("icoms").tables}
        assert set(first) == {f"warehouse/{entity}" for entity in entities}
        payment = first["warehouse/payment"]
        assert payment.passed, payment.description
        assert payment.metadata["warehouse_extra"].value == 2
        assert payment.metadata["deleted"].value == 2
        assert payment.metadata["rows_compared"].value > 0
        assert all(e.passed for e in first.values())

        with psycopg.connect(databases.source) as conn:
            conn.execute('DELETE FROM icoms."PAYMENT" WHERE "PAYMENT_NO" % 2 = 0')
        refused = _parity_run(instance, resource)["warehouse/payment"]
        assert not refused.passed
        assert refused.severity == dg.AssetCheckSeverity.ERROR
        assert refused.metadata["delete_cap_refused"].value is True
        assert "max_delete_fraction" in (refused.description or "")
