"""Alerts mean what they say (issue 14 items 1-2), through the real alerts sensor on a real
DagsterInstance, received by the local webhook: a new cause of failure is a new alert, a
run failure resolves on the tier's next committed batch, parity and freshness checks at
ERROR alert, the freshness check's latest result belongs to the latest materialization,
and the operations view lists lag and alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml

from billing_sync.definitions import defs
from billing_sync.defs.keys import OPERATIONS_KEY, TIER_TAG
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import next_second
from billing_sync_tests.webhook import Recorder, webhook_server

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

PAYMENT = dg.AssetKey(["warehouse", "payment"])
FIRST_PAYMENTS = 'SELECT "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT" ORDER BY 1, 2 LIMIT {n}'


def _settings(settings_file: Path, hook: Recorder, **changes: Any) -> BillingSyncResource:
    raw = yaml.safe_load(settings_file.read_text())
    raw["alerts"] = {"webhook_url": hook.url}
    raw.update(changes)
    settings_file.write_text(yaml.safe_dump(raw))
    return BillingSyncResource(config_file=str(settings_file))


def _run(instance: dg.DagsterInstance, resource: BillingSyncResource, job: str) -> bool:
    op = job.removesuffix("_job")
    config = {"ops": {op: {"config": {"batches": 1, "poll_interval_seconds": 0}}}}
    return (
        defs()
        .resolve_job_def(job)
        .execute_in_process(
            instance=instance,
            resources={"billing_sync": resource},
            run_config=config if op.startswith("sync_") else {},
            tags={TIER_TAG: op.removeprefix("sync_")} if op.startswith("sync_") else {},
            raise_on_error=False,
        )
        .success
    )


class Sensors:
    """Ticks sensors as the daemon would, keeping each one's cursor."""

    def __init__(self, instance: dg.DagsterInstance, resource: BillingSyncResource) -> None:
        self.instance, self.resource = instance, resource
        self.cursors: dict[str, str | None] = {}

    def tick(self, name: str) -> Any:
        definitions = defs()
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursors.get(name),
            resources={"billing_sync": self.resource}, definitions=definitions,
        )  # fmt: skip
        result = definitions.resolve_sensor_def(name)(context)
        self.cursors[name] = context.cursor
        return result


def _set_amount(url: str, amount: int, n: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = {amount}, {ICOMS_STAMP_SET}'
            f' WHERE ("SITE_ID", "PAYMENT_NO") IN ({FIRST_PAYMENTS.format(n=n)})'
        )
    next_second()


def test_a_new_cause_is_a_new_alert_and_a_committed_batch_resolves_them(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    with webhook_server() as hook, dg.instance_for_test() as instance:
        resource = _settings(settings_file, hook)
        sensors = Sensors(instance, resource)
        assert _run(instance, resource, "sync_priority_job")  # the first load

        _set_amount(databases.source, -5, 12)  # over the validation threshold: cause 1
        assert not _run(instance, resource, "sync_priority_job")
        sensors.tick("alerts_sensor")
        assert len(hook.of_kind("run_failed", "firing")) == 1

        # The source goes away: cause 2, while cause 1 has not been fixed.
        unreachable = databases.source.rsplit("@", 1)[0] + "@127.0.0.1:9/nowhere"
        down = _settings(settings_file, hook, source_url=unreachable)
        for _ in range(2):  # twice the same cause: one more alert, not two
            assert not _run(instance, down, "sync_priority_job")
            sensors.tick("alerts_sensor")
        firing = hook.of_kind("run_failed", "firing")
        assert len(firing) == 2, [b["key"] for b in firing]
        assert firing[0]["key"] != firing[1]["key"]
        assert "threshold" in firing[0]["summary"] and "threshold" not in firing[1]["summary"]

        # Fixed, and one batch of the tier commits outside any Dagster run (as the next
        # batch of a long run would, long before the run ends): both resolve.
        _set_amount(databases.source, 5, 12)
        resource = _settings(settings_file, hook, source_url=databases.source)
        with resource.engine() as engine:
            engine.sync_once("priority")
        sensors.tick("alerts_sensor")
        assert len(hook.of_kind("run_failed", "resolved")) == 2
        assert not [b for b in hook.bodies if b["status"] == "firing" and "not sent" in str(b)]


def test_parity_and_freshness_checks_at_error_alert_and_show_as_latest(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    with webhook_server() as hook, dg.instance_for_test() as instance:
        raw = yaml.safe_load(settings_file.read_text())
        tiers = raw["tiers"]
        tiers["priority"]["freshness_sla_seconds"] = 0.5  # breached once the source is quiet
        resource = _settings(settings_file, hook, tiers=tiers)
        sensors = Sensors(instance, resource)
        assert _run(instance, resource, "sync_priority_job")

        # In the run, each materialization is followed by a freshness evaluation of the same
        # run: the UI's check list shows the latest result, not "Not evaluated".
        key = dg.AssetCheckKey(PAYMENT, "freshness")
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        materialized = instance.get_latest_materialization_event(PAYMENT)
        assert materialized is not None and latest.run_id == materialized.run_id

        # Quiet since: the lag passes the 0.5 s SLA; the sensor's evaluation is an ERROR.
        next_second()
        evaluated = sensors.tick("freshness_sensor")
        payment = next(e for e in evaluated.asset_events if e.asset_key == PAYMENT)
        assert not payment.passed and payment.severity == dg.AssetCheckSeverity.ERROR
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert latest.status.value == "FAILED"

        # Parity at ERROR: the delete cap refuses half the payments vanishing.
        with psycopg.connect(databases.source) as conn:
            conn.execute('DELETE FROM icoms."PAYMENT" WHERE "PAYMENT_NO" % 2 = 0')
        assert _run(instance, resource, "parity_checks_job")
        result = sensors.tick("alerts_sensor")

        checks = {b["subject"] for b in hook.of_kind("check_error", "firing")}
        assert "warehouse/payment/parity" in checks
        assert "warehouse/payment/freshness" not in checks  # said by its breach, with figures
        breaches = {b["subject"] for b in hook.of_kind("freshness_breach", "firing")}
        assert "payment" in breaches

        # The operations view: a materialization of operations/status with the lag per table
        # and the alerts firing.
        assert isinstance(result, dg.SensorResult) and result.asset_events
        page = result.asset_events[0]
        assert isinstance(page, dg.AssetMaterialization) and page.asset_key == OPERATIONS_KEY
        text = str(page.metadata["status"].value)
        assert "| icoms.PAYMENT | payment | priority |" in text and "**BREACH**" in text
        assert "warehouse/payment/parity" in text
        assert page.metadata["active_alerts"].value == len(hook.bodies)
