"""Alerts: fire once while a condition lasts, resolve when it clears, JSON or Slack bodies,
POSTed to a local HTTP server that records what it receives."""

from __future__ import annotations

import logging

import pytest

from billing_sync.alerts import AlertState, notify
from billing_sync.alerts import conditions as c
from billing_sync.alerts.operations import markdown
from billing_sync.alerts.payload import firing
from billing_sync.config import AlertSettings
from billing_sync_tests.webhook import webhook_server


def test_a_condition_fires_once_while_it_lasts_and_resolves_once() -> None:
    with webhook_server() as hook:
        settings = AlertSettings(webhook_url=hook.url)
        state = AlertState()
        breach = c.freshness_breaches(
            [c.Freshness("payment", "priority", 42.0, 10.0, "icoms.PAYMENT")]
        )
        for tick in range(3):  # the breach lasts three evaluations
            result = notify(state, breach, kinds=c.KINDS, settings=settings, now=1000.0 + tick)
            state = AlertState.from_json(result.state.to_json())  # as a sensor cursor
        assert [b["status"] for b in hook.bodies] == ["firing"]
        sent = hook.bodies[0]
        assert sent["kind"] == "freshness_breach" and sent["subject"] == "payment"
        assert sent["severity"] == "critical" and "42s behind" in sent["summary"]
        assert "billing-sync status" in sent["action"]

        for tick in range(2):  # cleared
            state = notify(state, [], kinds=c.KINDS, settings=settings, now=2000.0 + tick).state
        assert [b["status"] for b in hook.bodies] == ["firing", "resolved"]
        assert hook.bodies[1]["key"] == "freshness_breach:payment"
        assert hook.bodies[1]["since"] is not None


def test_only_evaluated_kinds_resolve_and_a_failed_post_is_retried() -> None:
    with webhook_server() as hook:
        settings = AlertSettings(webhook_url=hook.url)
        run = c.run_failures([c.FinishedRun("sync_priority_job", "abcdef1234", True, "boom")])
        spike = c.quarantine_spikes({"payment": 30, "product": 2}, threshold=20, window_seconds=300)
        assert [s.subject for s in spike] == ["payment"]
        hook.fail_next = 1
        result = notify(AlertState(), [*run, *spike], kinds=c.KINDS, settings=settings, now=1.0)
        assert result.failed == 1 and len(hook.bodies) == 1  # one POST got a 500
        result = notify(result.state, [*run, *spike], kinds=c.KINDS, settings=settings, now=2.0)
        assert result.failed == 0
        assert sorted(b["kind"] for b in hook.bodies) == ["quarantine_spike", "run_failed"]
        # The databases are down: only run and check conditions were evaluated, so the
        # spike is not resolved for lack of figures.
        result = notify(result.state, [*run], kinds=[c.RUN_FAILED], settings=settings, now=3.0)
        assert len(hook.bodies) == 2
        notify(result.state, [], kinds=c.KINDS, settings=settings, now=4.0)
        assert sorted(b["kind"] for b in hook.bodies if b["status"] == "resolved") == [
            "quarantine_spike",
            "run_failed",
        ]


def test_slack_bodies_and_every_kind_of_condition() -> None:
    conditions = [
        *c.run_failures([c.FinishedRun("j", "r1", True, "x"), c.FinishedRun("k", "r2", False)]),
        *c.check_errors(
            [
                c.CheckOutcome("warehouse/payment", "validation", False, "ERROR", "too many"),
                c.CheckOutcome("warehouse/product", "validation", False, "WARN", "2 rows"),
            ]
        ),
        *c.late_rows({"payment": 3, "product": 0}, window_seconds=600),
        *c.horizon_held(4242, 300.0, limit_seconds=120),
        *c.horizon_held(4242, 30.0, limit_seconds=120),
        *c.freshness_breaches([c.Freshness("product", "standard", None, 60, "icoms.CUST_SERVICE")]),
    ]
    assert [x.key for x in conditions] == [
        f"run_failed:j#{c.cause_of('x')}",
        "check_error:warehouse/payment/validation",
        "late_rows:payment",
        "horizon_held:source",
        "freshness_breach:product",
    ]
    body = firing(conditions[3], at=0.0, fmt="slack")
    assert set(body) == {"text", "blocks"}
    assert "pid 4242" in body["text"] and body["text"].startswith(":warning: [billing-sync]")
    assert "What to do" in body["blocks"][1]["elements"][0]["text"]
    with webhook_server() as hook:
        settings = AlertSettings(webhook_url=hook.url, format="slack")
        notify(AlertState(), conditions[:1], kinds=c.KINDS, settings=settings, now=0.0)
        assert hook.bodies[0]["text"].startswith(":rotating_light:")


def test_without_a_webhook_alerts_are_only_logged() -> None:
    result = notify(
        AlertState(),
        c.horizon_held(1, 500.0, limit_seconds=1),
        kinds=c.KINDS,
        settings=AlertSettings(),
        now=0.0,
    )
    assert "horizon_held:source" in result.state.firing
    assert result.unsent and not result.sent
    assert "not sent: no webhook configured" in result.summary(1)


def test_without_a_webhook_the_log_says_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="billing_sync.alerts.notify"):
        result = notify(
            AlertState(), c.horizon_held(1, 500.0, limit_seconds=1), kinds=c.KINDS,
            settings=AlertSettings(), now=0.0,
        )  # fmt: skip
        notify(result.state, [], kinds=c.KINDS, settings=AlertSettings(), now=1.0)
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("alert (not sent: no webhook configured): source transaction")
    assert messages[1].startswith("alert resolved (not sent: no webhook configured)")
    assert result.summary(1) == (
        "1 conditions active, 0 messages sent, 1 not sent: no webhook configured (logged only)"
    )


def _failed(run_id: str, error: str, ended_at: float, job: str = "sync_bulk_job") -> c.FinishedRun:
    return c.FinishedRun(job, run_id, True, error, ended_at)


def test_run_failures_are_one_alert_per_job_and_cause_until_the_job_is_healthy() -> None:
    outage = "WarehouseUnavailable: connection to 10.1.2.3:5432 refused after 30s"
    shrink = "ShrinkRefused: icoms.LEDGER: 4120 of 9000 rows gone from the source"
    with webhook_server() as hook:
        settings = AlertSettings(webhook_url=hook.url)
        state = AlertState()

        def tick(runs: list[c.FinishedRun], healthy: float, at: float) -> None:
            nonlocal state
            active = c.run_failures(runs, healthy_since={"sync_bulk_job": healthy})
            state = notify(state, active, kinds=c.KINDS, settings=settings, now=at).state

        first = [_failed("run-1", outage, 100.0)]
        tick(first, healthy=50.0, at=101.0)
        # The same cause again (another host, another duration): no new message.
        second = [_failed("run-2", outage.replace("10.1.2.3", "10.1.2.4"), 200.0), *first]
        tick(second, healthy=50.0, at=201.0)
        assert len(hook.of_kind("run_failed", "firing")) == 1
        # A new cause while the first still holds: a second alert, naming it.
        third = [_failed("run-3", shrink, 300.0), *second]
        tick(third, healthy=50.0, at=301.0)
        firing = hook.of_kind("run_failed", "firing")
        assert len(firing) == 2 and "ShrinkRefused" in firing[1]["summary"]
        assert firing[0]["key"] != firing[1]["key"]
        assert firing[0]["subject"] == firing[1]["subject"] == "sync_bulk_job"
        # A batch of the tier committed after the last failure (the run goes on): healthy.
        tick(third, healthy=350.0, at=351.0)
        assert len(hook.of_kind("run_failed", "resolved")) == 2
        tick(third, healthy=350.0, at=361.0)
        assert len(hook.bodies) == 4
        # Failing again for an old cause after being healthy is news again.
        tick([_failed("run-4", shrink, 400.0), *third], healthy=350.0, at=401.0)
        assert len(hook.of_kind("run_failed", "firing")) == 3


def test_sensor_errors_alert_after_consecutive_failed_ticks() -> None:
    error = "psycopg.OperationalError: connection refused\nTraceback ..."
    ticks = [
        c.SensorTicks("sync_priority_sensor", (True, True, False), error),
        c.SensorTicks("freshness_sensor", (True, False, False), error),  # one blip
        c.SensorTicks("alerts_sensor", (False, True, True), error),  # recovered
        c.SensorTicks("new_sensor", (True,), error),  # one tick so far
    ]
    found = c.sensor_errors(ticks)
    assert [x.key for x in found] == ["sensor_error:sync_priority_sensor"]
    assert found[0].summary == (
        "sensor sync_priority_sensor failed its last 2 ticks: "
        "psycopg.OperationalError: connection refused"
    )


def test_a_freshness_check_error_is_said_once_by_its_breach() -> None:
    breach = c.freshness_breaches([c.Freshness("payment", "priority", 42.0, 10.0, "icoms.PAYMENT")])
    checks = c.check_errors(
        [
            c.CheckOutcome("warehouse/payment", "freshness", False, "ERROR", "42s behind"),
            c.CheckOutcome("warehouse/payment", "parity", False, "ERROR", "delete cap"),
            c.CheckOutcome("warehouse/product", "freshness", False, "ERROR", "stale"),
        ]
    )
    kept = c.without_duplicates([*breach, *checks])
    assert [x.key for x in kept] == [
        "freshness_breach:payment",
        "check_error:warehouse/payment/parity",
        "check_error:warehouse/product/freshness",  # no figures for it: the check says it
    ]


def test_operations_view_lists_tables_slowest_first_and_firing_alerts() -> None:
    tables = [
        c.Freshness("payment", "priority", 3.0, 10.0, "icoms.PAYMENT"),
        c.Freshness("ledger", "bulk", 1200.0, 900.0, "icoms.LEDGER"),
        c.Freshness("product", "standard", None, 60.0, "icoms.CUST_SERVICE"),
    ]
    state = AlertState()
    state.fired(c.freshness_breaches(tables)[0], 1_000_000.0)
    page = markdown(tables, state.firing, at=1_000_060.0, webhook=True)
    rows = [line for line in page.splitlines() if line.startswith("| icoms.")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| icoms.CUST_SERVICE", "| icoms.LEDGER", "| icoms.PAYMENT",
    ]  # fmt: skip
    assert "**BREACH**" in rows[1] and rows[2].endswith("| ok |")
    assert "**Active alerts: 1**" in page and "1970-01-12 13:46:40 UTC" in page
    down = markdown(None, {}, at=0.0, webhook=False, unavailable="OperationalError: refused")
    assert "Lag unavailable: OperationalError: refused" in down and "None." in down


def test_parity_repairs_refusals_and_a_damaged_cache_fire_with_an_action() -> None:
    repairs = {
        "icoms.PAYMENT": {"missing": 0, "stale": 2, "backwards": 1, "deleted": 0},
        "icoms.ACCOUNT": {"missing": 0, "stale": 0, "backwards": 0, "deleted": 0},
    }
    (repaired,) = c.parity_repairs(repairs, window_seconds=600)
    assert repaired.key == "parity_repaired:icoms.PAYMENT"
    assert "2 stale" in repaired.summary and "1 back to an older source version" in repaired.summary
    (refused,) = c.shrink_refusals([c.ShrinkRefusal("icoms.PAYMENT", 4477, 70000, "why")])
    assert refused.severity == "critical" and "4477 of 70000" in refused.summary
    assert "--max-delete-fraction" in refused.action
    assert c.cache_set_aside([]) == []
    (aside,) = c.cache_set_aside(["cache.duckdb.damaged-2", "cache.duckdb.damaged-1"])
    assert "latest cache.duckdb.damaged-2" in aside.summary and "remove" in aside.action
    assert {repaired.kind, refused.kind, aside.kind} <= set(c.KINDS)
