"""What on-call gets from Dagster (issue 5): validation checks (WARN on quarantine, ERROR on a
failed batch), numeric metadata, freshness and source observations from sensors, alerts
that fire once and resolve, and the retention job. On a real DagsterInstance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml

from billing_sync.definitions import defs
from billing_sync.defs.keys import TIER_TAG
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import next_second
from billing_sync_tests.webhook import webhook_server

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

PAYMENT = dg.AssetKey(["warehouse", "payment"])
FIRST_PAYMENTS = 'SELECT "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT" ORDER BY 1, 2 LIMIT {n}'


def _run(
    instance: dg.DagsterInstance, resource: BillingSyncResource, *, batches: int = 2
) -> dg.ExecuteInProcessResult:
    return (
        defs()
        .resolve_job_def("sync_priority_job")
        .execute_in_process(
            instance=instance,
            resources={"billing_sync": resource},
            run_config={
                "ops": {
                    "sync_priority": {"config": {"batches": batches, "poll_interval_seconds": 0}}
                }
            },
            tags={TIER_TAG: "priority"},
            raise_on_error=False,
        )
    )


def _sensor(
    name: str, instance: dg.DagsterInstance, resource: BillingSyncResource, cursor: str | None
) -> Any:
    definitions = defs()
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"billing_sync": resource},
        definitions=definitions,
    )
    result = definitions.resolve_sensor_def(name)(context)
    return result, context.cursor


def _set_amount(url: str, amount: int, n: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = {amount}, {ICOMS_STAMP_SET}'
            f' WHERE ("SITE_ID", "PAYMENT_NO") IN ({FIRST_PAYMENTS.format(n=n)})'
        )
    next_second()  # stamps have whole seconds: the capture reads a second once it is over


def test_validation_checks_metadata_and_alerts_that_fire_once_and_resolve(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    with webhook_server() as hook:
        raw = yaml.safe_load(settings_file.read_text())
        raw["alerts"] = {"webhook_url": hook.url}
        settings_file.write_text(yaml.safe_dump(raw))
        resource = BillingSyncResource(config_file=str(settings_file))
        with dg.instance_for_test() as instance:
            assert _run(instance, resource).success  # the first load

            # Two bad payments: quarantined, the run succeeds, the check warns.
            _set_amount(databases.source, -5, 2)
            result = _run(instance, resource)
            assert result.success
            evaluations = [
                e for e in result.get_asset_check_evaluations() if e.asset_key == PAYMENT
            ]
            warned = [e for e in evaluations if not e.passed]
            assert warned and all(e.severity == dg.AssetCheckSeverity.WARN for e in warned)
            first = warned[0]
            assert first.metadata["rows_quarantined"].value == 2
            failing = first.metadata["failing_expectations"].value
            assert failing[0]["expectation"] == "expect_column_values_to_be_between(amount)"
            assert first.metadata["sample_keys"].value
            record = instance.fetch_materializations(PAYMENT, limit=1).records[0]
            metadata = record.asset_materialization.metadata  # type: ignore[union-attr]
            for name in ("rows_quarantined", "rows_released", "late_rows", "rows_deleted",
                         "batch_seconds", "validation_seconds", "rows_updated"):  # fmt: skip
                assert name in metadata, name
            assert metadata["rows_quarantined"].value == 2

            # Eight more: over the threshold, the run fails, the check is an ERROR.
            _set_amount(databases.source, -5, 10)
            failed = _run(instance, resource)
            assert not failed.success
            key = dg.AssetCheckKey(PAYMENT, "validation")
            latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])
            assert latest[key].run_id == failed.run_id
            error = latest[key].event.dagster_event.event_specific_data  # type: ignore[union-attr]
            assert error.severity == dg.AssetCheckSeverity.ERROR and not error.passed
            assert "over the payment threshold" in error.description

            # The alert sensor: the failed run and the ERROR check fire once...
            _, cursor = _sensor("alerts_sensor", instance, resource, None)
            _, cursor = _sensor("alerts_sensor", instance, resource, cursor)
            assert len(hook.of_kind("run_failed")) == 1
            run_alert = hook.of_kind("run_failed")[0]
            assert run_alert["subject"] == "sync_priority_job"
            assert "over the payment threshold" in run_alert["details"]["error"]
            assert len(hook.of_kind("check_error")) == 1
            assert hook.of_kind("check_error")[0]["subject"] == "warehouse/payment/validation"
            fired = len(hook.bodies)

            # ...and resolve once the biller fixes the rows and a run succeeds.
            _set_amount(databases.source, 5, 10)
            assert _run(instance, resource).success
            _, cursor = _sensor("alerts_sensor", instance, resource, cursor)
            _, cursor = _sensor("alerts_sensor", instance, resource, cursor)
            resolved = {b["kind"] for b in hook.bodies[fired:] if b["status"] == "resolved"}
            assert {"run_failed", "check_error"} <= resolved
            assert len(hook.of_kind("run_failed", "resolved")) == 1


def test_freshness_and_source_observations_come_from_sensors_without_runs(
    settings_file: Path,
) -> None:
    resource = BillingSyncResource(config_file=str(settings_file))
    with dg.instance_for_test() as instance:
        assert _run(instance, resource).success
        result, _ = _sensor("freshness_sensor", instance, resource, None)
        assert isinstance(result, dg.SensorResult)
        by_asset = {e.asset_key.to_user_string(): e for e in result.asset_events}
        assert by_asset["warehouse/payment"].passed
        assert not by_asset["warehouse/product"].passed  # the standard tier never ran
        assert "not loaded yet" in (by_asset["warehouse/product"].description or "")
        again, _ = _sensor("freshness_sensor", instance, resource, result.cursor)
        assert isinstance(again, dg.SkipReason)  # unchanged: not reported again yet

        observed, _ = _sensor("source_observation_sensor", instance, resource, None)
        assert isinstance(observed, dg.SensorResult)
        payments = next(
            e
            for e in observed.asset_events
            if e.asset_key == dg.AssetKey(["source", "icoms", "PAYMENT"])
        )
        assert payments.metadata["row_count"].value > 0
        assert payments.metadata["high_watermark"].value
        assert payments.metadata["behind_seconds"].value >= 0


def test_retention_job_purges_finished_runs_older_than_its_age(settings_file: Path) -> None:
    resource = BillingSyncResource(config_file=str(settings_file))
    with dg.instance_for_test() as instance:
        assert _run(instance, resource, batches=1).success
        assert _run(instance, resource, batches=1).success
        retention = defs().resolve_job_def("retention_job")
        kept = retention.execute_in_process(
            instance=instance,
            resources={"billing_sync": resource},
            run_config={"ops": {"purge_old_runs": {"config": {"max_age_hours": 24}}}},
        )
        assert kept.success and len(instance.get_runs()) == 3
        purged = retention.execute_in_process(
            instance=instance,
            resources={"billing_sync": resource},
            run_config={"ops": {"purge_old_runs": {"config": {"max_age_hours": 0.0000001}}}},
        )
        assert purged.success
        assert [run.run_id for run in instance.get_runs()] == [purged.run_id]
        assert not list(instance.all_logs(kept.run_id))  # its event log went with it
