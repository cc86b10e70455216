"""Alerts: fire once while a condition lasts, resolve when it clears, JSON or Slack bodies,
POSTed to a local HTTP server that records what it receives."""

from __future__ import annotations

from billing_sync.alerts import AlertState, notify
from billing_sync.alerts import conditions as c
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
        "run_failed:j",
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
