"""Sensors and sync runs on a real DagsterInstance against real PostgreSQL and DuckDB."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest

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
    """Item 10: with instance run retries on (dagster.yaml), a tier run whose worker died
    was retried by the daemon and started again by the sensor. The sensor owns it."""
    from dagster._core.events import RunFailureReason
    from dagster._core.storage.tags import RUN_FAILURE_REASON_TAG
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

    definitions = defs()
    overrides = {"run_retries": {"enabled": True, "max_retries": 1}}
    with dg.instance_for_test(overrides=overrides) as instance:
        for job_name, retried in (("sync_priority_job", False), ("parity_checks_job", True)):
            job = definitions.resolve_job_def(job_name)
            run = instance.create_run_for_job(job, tags=dict(job.tags))
            instance.add_run_tags(
                run.run_id, {RUN_FAILURE_REASON_TAG: RunFailureReason.RUN_WORKER_RESTART.value}
            )
            instance.report_run_failed(run)
            failed = instance.get_run_by_id(run.run_id)
            assert failed is not None and failed.status == dg.DagsterRunStatus.FAILURE
            assert should_retry(failed, instance) is retried, job_name
