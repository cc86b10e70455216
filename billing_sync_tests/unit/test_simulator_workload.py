"""Pacing and the operation mix of the change workload (no database)."""

from __future__ import annotations

import pytest

from billing_sync.simulator.operations import (
    EXPECTED_ROWS,
    MIX,
    describe_mix,
    operation_statements,
    operation_weights,
    statement_batch_for,
)
from billing_sync.simulator.workload import Pacer, Workload


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_waits_for_tokens_then_lets_a_burst_through() -> None:
    clock = FakeClock()
    pacer = Pacer(100, clock=clock)
    assert pacer.wait_time(2) == pytest.approx(0.02)
    clock.now += 0.5  # 50 tokens
    assert pacer.wait_time(2) == 0
    pacer.spend(45)
    assert pacer.wait_time(10) == pytest.approx(0.05)


def test_pacer_rate_is_exact_over_time() -> None:
    clock = FakeClock()
    pacer = Pacer(3000, clock=clock)
    spent = 0
    for _ in range(100_000):
        delay = pacer.wait_time(3)
        if delay:
            clock.now += delay
        else:
            pacer.spend(3)
            spent += 3
            clock.now += 0.0002  # the operation itself
    assert spent / (clock.now - 100.0) == pytest.approx(3000, rel=0.01)


def test_pacer_forgives_backlog_beyond_the_burst() -> None:
    clock = FakeClock()
    pacer = Pacer(100, burst_seconds=1.0, clock=clock)
    clock.now += 60  # a one-minute stall of the database
    assert pacer.wait_time(100) == 0
    pacer.spend(100)
    assert pacer.wait_time(1) == pytest.approx(0.01)


def test_pacer_lets_an_operation_bigger_than_the_burst_through() -> None:
    clock = FakeClock()
    pacer = Pacer(10, burst_seconds=1.0, clock=clock)
    clock.now += 100
    assert pacer.wait_time(50) == 0


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0)
    with pytest.raises(ValueError):
        Workload("postgresql://nowhere/db", rate=0)


def test_mix_shares_add_up_and_weights_reproduce_them() -> None:
    assert sum(spec.row_share for spec in MIX) == pytest.approx(1.0)
    for statement_rows in (2.0, 50.0, 400.0):
        weights = operation_weights(statement_rows)
        assert sum(weights.values()) == pytest.approx(1.0)
        rows = {
            name: weight * (statement_rows if name == "issue_statements" else EXPECTED_ROWS[name])
            for name, weight in weights.items()
        }
        total = sum(rows.values())
        for spec in MIX:
            assert rows[spec.name] / total == pytest.approx(spec.row_share)


@pytest.mark.parametrize(("rate", "batch"), [(50, 6), (500, 62), (1600, 200), (5000, 200), (1, 1)])
def test_statement_batch_is_a_fraction_of_a_second_of_rows(rate: float, batch: int) -> None:
    assert statement_batch_for(rate) == batch


def test_describe_mix_lists_every_operation() -> None:
    text = describe_mix()
    for spec in MIX:
        assert spec.name in text
    assert "localtimestamp" in text


def test_every_write_stamps_the_transaction_start() -> None:
    for name, statement in operation_statements("icoms").items():
        text = statement.as_string(None)
        assert '"icoms"."' in text, name
        assert "localtimestamp" in text, name
        assert "clock_timestamp" not in text and "now()" not in text, name
        assert text.count('"CHG_TS" = localtimestamp') + text.count(
            "localtimestamp, localtimestamp"
        ) >= len(next(spec for spec in MIX if spec.name == name).tables), name
