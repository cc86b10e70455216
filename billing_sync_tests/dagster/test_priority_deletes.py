"""Hard deletes of priority tables within a minute: one long-lived run compares keys only
every minute and flags what the source lost (issue 15, item 5); the sensor keeps one run."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from billing_sync.config import load_settings
from billing_sync.definitions import defs
from billing_sync.defs.deletes import DELETES_JOB, priority_deletes_sensor
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.reconcile.deletes import KeyCompare, flag_deletes_by_keys
from billing_sync_tests.integration.helpers import source_now

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

ONE_ROUND = {"ops": {"flag_priority_deletes": {"config": {"rounds": 1}}}}


def _deleted(url: str, entity: str, number: str, key: tuple[str, int]) -> bool | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT _is_deleted FROM billing.{entity} WHERE _source_system = 'icoms'"
            f" AND site_id = %s AND {number} = %s",
            (key[0].strip(), key[1]),
        ).fetchone()
    return None if row is None else bool(row[0])


def test_a_priority_hard_delete_is_flagged_by_the_minute_job(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    with SyncEngine.from_settings(load_settings(path=settings_file)) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
    with psycopg.connect(databases.source, autocommit=True) as conn:
        paid = conn.execute(
            'DELETE FROM icoms."PAYMENT" WHERE ctid = (SELECT ctid FROM icoms."PAYMENT"'
            ' ORDER BY "PAYMENT_NO" LIMIT 1) RETURNING "SITE_ID", "PAYMENT_NO"'
        ).fetchone()
        billed = conn.execute(
            'DELETE FROM icoms."LEDGER" WHERE ctid = (SELECT ctid FROM icoms."LEDGER"'
            ' ORDER BY "TRAN_NO" LIMIT 1) RETURNING "SITE_ID", "TRAN_NO"'
        ).fetchone()
    assert paid is not None and billed is not None
    assert _deleted(databases.warehouse, "payment", "payment_number", (paid[0], paid[1])) is False
    resource = BillingSyncResource(config_file=str(settings_file))
    assert priority_deletes_sensor.minimum_interval_seconds == 60
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"billing_sync": resource})
        request = priority_deletes_sensor(context)
        assert isinstance(request, dg.RunRequest), request
        result = (
            defs()
            .resolve_job_def(DELETES_JOB)
            .execute_in_process(
                instance=instance,
                resources={"billing_sync": resource},
                tags=request.tags,
                run_config=ONE_ROUND,
            )
        )
        assert result.success
        logs = "\n".join(
            str(e.message) for e in result.all_events if e.event_type_value == "ENGINE_EVENT"
        ) + "\n".join(
            str(r.user_message) for r in instance.all_logs(result.run_id) if r.user_message
        )
    assert "icoms.PAYMENT:" in logs and "1 flagged deleted" in logs, logs
    assert _deleted(databases.warehouse, "payment", "payment_number", (paid[0], paid[1])) is True
    # Only the priority tier is compared every minute: the bulk table's delete waits for the
    # parity check (10 minutes), which compares whole rows.
    assert (
        _deleted(databases.warehouse, "bill_item", "item_number", (billed[0], billed[1])) is False
    )
    assert "icoms.LEDGER" not in logs
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        recorded = conn.execute(
            "SELECT count(*) FROM billing_sync.hard_delete WHERE entity = 'payment'"
        ).fetchone()
    assert recorded == (1,)


def test_one_run_compares_every_interval_and_outlives_a_failed_round(
    settings_file: Path, databases: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run launched per minute cost a process start and Dagster's imports each minute: the
    run loops instead. A round that loses its connections is retried the next round."""
    import billing_sync.defs.deletes as deletes

    with SyncEngine.from_settings(load_settings(path=settings_file)) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
    real = flag_deletes_by_keys
    rounds: list[str] = []

    def compare(engine: SyncEngine, **kwargs: object) -> list[KeyCompare]:
        rounds.append("round")
        if len(rounds) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        if len(rounds) == 2:  # a delete after the failed round: found by a later one
            with psycopg.connect(databases.source, autocommit=True) as conn:
                conn.execute(
                    'DELETE FROM icoms."PAYMENT" WHERE ctid = (SELECT ctid FROM'
                    ' icoms."PAYMENT" ORDER BY "PAYMENT_NO" DESC LIMIT 1)'
                )
        return real(engine, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(deletes, "flag_deletes_by_keys", compare)
    resource = BillingSyncResource(config_file=str(settings_file))
    config = {"ops": {"flag_priority_deletes": {"config": {"rounds": 3, "interval_seconds": 0.2}}}}
    with dg.instance_for_test() as instance:
        result = (
            defs()
            .resolve_job_def(DELETES_JOB)
            .execute_in_process(
                instance=instance, resources={"billing_sync": resource}, run_config=config
            )
        )
        assert result.success
        messages = [str(r.user_message) for r in instance.all_logs(result.run_id) if r.user_message]
    assert len(rounds) == 3
    assert any("key compare failed, retried in a minute" in m for m in messages), messages
    assert sum("icoms.PAYMENT:" in m for m in messages) == 2, messages
    assert any("icoms.PAYMENT:" in m and "1 flagged deleted" in m for m in messages), messages
