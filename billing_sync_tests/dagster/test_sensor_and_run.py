"""Sensors and sync runs on a real DagsterInstance against real PostgreSQL and DuckDB."""

from __future__ import annotations

from pathlib import Path

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

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


def _evaluate(sensor_name: str, instance: dg.DagsterInstance, resource: BillingSyncResource):  # type: ignore[no-untyped-def]
    definitions = defs()
    sensor = definitions.resolve_sensor_def(sensor_name)
    context = dg.build_sensor_context(
        instance=instance,
        cursor=None,
        resources={"billing_sync": resource},
        definitions=definitions,
    )
    return sensor(context)


def _run(
    job: str, instance: dg.DagsterInstance, resource: BillingSyncResource
) -> dg.ExecuteInProcessResult:
    definitions = defs()
    op = job.removesuffix("_job")
    return definitions.resolve_job_def(job).execute_in_process(
        instance=instance,
        resources={"billing_sync": resource},
        run_config={"ops": {op: {"config": {"batches": 2, "poll_interval_seconds": 0.0}}}},
        tags={TIER_TAG: op.removeprefix("sync_")},
    )


def test_sensor_requests_a_run_only_when_the_source_moved(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    resource = BillingSyncResource(config_file=str(settings_file))
    with dg.instance_for_test() as instance:
        first = _evaluate("sync_priority_sensor", instance, resource)
        assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1
        assert first.run_requests[0].tags[TIER_TAG] == "priority"

        assert _run("sync_priority_job", instance, resource).success
        idle = _evaluate("sync_priority_sensor", instance, resource)
        assert isinstance(idle, dg.SkipReason)

        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                'UPDATE "icoms"."ACCOUNT" SET "AR_BALANCE" = "AR_BALANCE" + 1,'
                f' {ICOMS_STAMP_SET} WHERE ctid = (SELECT min(ctid) FROM "icoms"."ACCOUNT")'
            )
        moved = _evaluate("sync_priority_sensor", instance, resource)
        assert isinstance(moved, dg.SensorResult) and len(moved.run_requests or []) == 1
        assert "icoms.ACCOUNT" in moved.run_requests[0].tags["billing_sync/behind"]


def test_sync_run_records_a_materialization_per_batch_with_metadata(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    resource = BillingSyncResource(config_file=str(settings_file))
    with dg.instance_for_test() as instance:
        assert _run("sync_priority_job", instance, resource).success  # the initial load
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET {ICOMS_STAMP_SET} WHERE "PAYMENT_NO" % 3 = 0'
            )
        next_second()  # stamps have whole seconds: the capture reads a second once it is over
        assert _run("sync_priority_job", instance, resource).success
        events = instance.fetch_materializations(dg.AssetKey(["warehouse", "payment"]), limit=10)
        assert len(events.records) >= 2, "the initial load and the change, one each"
        metadata = events.records[0].asset_materialization.metadata  # type: ignore[union-attr]
        for name in (
            "rows_inserted",
            "rows_updated",
            "rows_deleted",
            "lag_seconds",
            "batch_seconds",
        ):
            assert name in metadata
        assert metadata["rows_updated"].value > 0
        assert 0 <= metadata["lag_seconds"].value < 60
        cache = instance.fetch_materializations(dg.AssetKey(["cache", "payment"]), limit=10)
        assert cache.records

        checks = (
            defs()
            .resolve_job_def("freshness_checks_job")
            .execute_in_process(instance=instance, resources={"billing_sync": resource})
        )
        evaluations = checks.get_asset_check_evaluations()
        by_asset = {e.asset_key.to_user_string(): e for e in evaluations}
        assert by_asset["warehouse/payment"].passed
        assert not by_asset["warehouse/product"].passed  # the standard tier has not run yet


def test_a_dead_sync_run_worker_is_restarted_by_the_sensor_alone() -> None:
    """Item 10: with the instance's run retries on (dagster.yaml), a tier run whose worker
    died was retried by the daemon and started again by the sensor. The sensor owns it: a
    tier run carries ``dagster/max_retries: 0`` (Dagster's documented per-run override of
    ``run_retries.max_retries``); other jobs keep the instance's bounded retry."""
    instance_file = Path(__file__).parents[2] / "dagster.yaml"
    retries = yaml.safe_load(instance_file.read_text())["run_retries"]
    assert retries["enabled"] and retries["max_retries"] >= 1, "the tag is what stops them"
    definitions = defs()
    with dg.instance_for_test(overrides={"run_retries": retries}) as instance:
        for tier in ("priority", "standard", "bulk"):
            job = definitions.resolve_job_def(f"sync_{tier}_job")
            run = instance.create_run_for_job(job, tags=dict(job.tags))
            assert run.tags.get("dagster/max_retries") == "0", tier
        parity = definitions.resolve_job_def("parity_checks_job")
        assert "dagster/max_retries" not in parity.tags


def test_a_failed_table_fails_the_run_by_name_while_the_tier_syncs(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    """Six bad payments fail icoms.PAYMENT's batch whole; ACCOUNT, in the same tier,
    still loads and materializes; the run fails naming the table, with an ERROR check."""
    resource = BillingSyncResource(config_file=str(settings_file))
    with dg.instance_for_test() as instance:
        assert _run("sync_priority_job", instance, resource).success  # the initial load
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = -5, {ICOMS_STAMP_SET}'
                ' WHERE ("SITE_ID", "PAYMENT_NO") IN'
                ' (SELECT "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT" ORDER BY 1, 2 LIMIT 6)'
            )
            conn.execute(
                f'UPDATE "icoms"."ACCOUNT" SET {ICOMS_STAMP_SET} WHERE ("SITE_ID", "ACCOUNT_NO")'
                ' IN (SELECT "SITE_ID", "ACCOUNT_NO" FROM "icoms"."ACCOUNT" LIMIT 5)'
            )
        next_second()
        before = len(
            instance.fetch_materializations(dg.AssetKey(["warehouse", "billing_account"]),
                                            limit=50).records
        )  # fmt: skip
        definitions = defs()
        result = definitions.resolve_job_def("sync_priority_job").execute_in_process(
            instance=instance,
            resources={"billing_sync": resource},
            run_config={"ops": {"sync_priority": {"config": {"batches": 2,
                                                             "poll_interval_seconds": 0.0}}}},
            tags={TIER_TAG: "priority"},
            raise_on_error=False,
        )  # fmt: skip
        assert not result.success
        failure = result.failure_data_for_node("sync_priority")
        assert failure is not None and "icoms.PAYMENT" in str(failure.error)
        after = instance.fetch_materializations(
            dg.AssetKey(["warehouse", "billing_account"]), limit=50
        ).records
        assert len(after) > before, "the tier's other tables still loaded"
        failed_checks = [
            data
            for entry in instance.all_logs(result.run_id)
            if entry.dagster_event is not None
            and entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
            and (data := entry.dagster_event.event_specific_data) is not None
            and data.asset_key.to_user_string() == "warehouse/payment"  # type: ignore[union-attr]
            and not data.passed  # type: ignore[union-attr]
        ]
        assert failed_checks, "an ERROR check evaluation for the failed batch"
        assert failed_checks[0].severity == dg.AssetCheckSeverity.ERROR  # type: ignore[union-attr]
