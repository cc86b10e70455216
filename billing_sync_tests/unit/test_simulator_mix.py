"""The workload's mix and pacing, pure: shares, weights, SQL conventions, the printed table."""

from __future__ import annotations

import pytest

from billing_sync.simulator.amdocs import operations as amdocs_ops
from billing_sync.simulator.billers import describe_mix
from billing_sync.simulator.drivers import specs_of
from billing_sync.simulator.engine import Pacer, statement_batch_for
from billing_sync.simulator.icoms import operations as icoms_ops
from billing_sync.simulator.icoms.bad_rows import bad_row_statements
from billing_sync.simulator.mix import OperationSpec, operation_weights, table_shares

SPECS = (
    OperationSpec("small", 0.5, ("A",), 1, ""),
    OperationSpec("big", 0.5, ("B", "C"), 100, ""),
)


def test_weights_make_rows_split_as_the_shares_say() -> None:
    weights = operation_weights(SPECS, {"big": 100})
    assert weights["small"] / weights["big"] == pytest.approx(100)
    rows = {name: weight * {"small": 1, "big": 100}[name] for name, weight in weights.items()}
    assert rows["small"] == pytest.approx(rows["big"])
    assert sum(operation_weights(SPECS, {}, share=0.4).values()) == pytest.approx(0.4)


def test_learned_row_counts_change_the_weights() -> None:
    assert (
        operation_weights(SPECS, {"big": 10})["big"] > operation_weights(SPECS, {"big": 100})["big"]
    )


@pytest.mark.parametrize("system", ["icoms", "amdocs"])
def test_every_operation_has_sql_and_the_mix_sums_to_one(system: str) -> None:
    specs = specs_of(system)
    statements = (icoms_ops if system == "icoms" else amdocs_ops).operation_statements(system)
    assert set(statements) == {spec.name for spec in specs}
    assert sum(spec.row_share for spec in specs) == pytest.approx(1.0, abs=0.05)
    assert any(spec.hard_delete for spec in specs)
    for name, text in statements.items():
        assert "$" not in text, name  # every placeholder filled
        assert f'"{system}".' in text, name


def test_icoms_writes_stamp_from_the_transaction_start() -> None:
    texts = {**icoms_ops.operation_statements("icoms"), **bad_row_statements("icoms")}
    for name, text in texts.items():
        if "DELETE" in text:
            continue
        assert "now() AT TIME ZONE 'America/Chicago'" in text, name
        assert "date_trunc('second', now()" in text, name  # its second, never earlier
        assert "clock_timestamp" not in text and "localtimestamp" not in text, name


def test_amdocs_writes_stamp_sys_dates() -> None:
    for name, text in amdocs_ops.operation_statements("amdocs").items():
        if "DELETE" in text:
            continue
        assert "now() AT TIME ZONE 'UTC'" in text, name
        assert '"SYS_UPDATE_DATE" =' in text or '"SYS_CREATION_DATE"' in text, name


def test_table_shares_cover_every_written_table() -> None:
    shares = table_shares(specs_of("icoms"))
    assert sum(shares.values()) == pytest.approx(1.0)
    written = {table for spec in specs_of("icoms") for table in spec.tables}
    assert set(shares) == written


def test_describe_mix_lists_every_operation_of_both_billers() -> None:
    text = describe_mix(systems=("icoms", "amdocs"))
    for system in ("icoms", "amdocs"):
        assert f"{system} (" in text
        for spec in specs_of(system):
            assert spec.name in text
    assert "60% of the rows" in text and "40% of the rows" in text
    assert "rows per table: " in text


@pytest.mark.parametrize(("rate", "batch"), [(50, 3), (800, 50), (3500, 200), (10_000, 200)])
def test_bill_runs_are_a_fraction_of_a_second_of_rows(rate: float, batch: int) -> None:
    assert statement_batch_for(rate) == batch


def test_pacer_spends_tokens_at_the_rate() -> None:
    now = [0.0]
    pacer = Pacer(100, clock=lambda: now[0])
    assert pacer.wait_time(10) == pytest.approx(0.1)
    now[0] = 0.1
    assert pacer.wait_time(10) == 0
    pacer.spend(10)
    assert pacer.wait_time(50) == pytest.approx(0.5)
    now[0] = 100.0  # a long stall keeps at most one second of backlog
    assert pacer.wait_time(100) == 0
    pacer.spend(100)
    assert pacer.wait_time(1) == pytest.approx(0.01)
