"""Scenario ``capacity``: 10,000 changed rows/s on the machine's cores (issue 15, item 4).

The simulator, PostgreSQL and the pipeline (the real Dagster daemon, sensors and tier
runs, engine defaults) share the machine, as in the ``tail`` scenario, at one rate
(``capacity_rate``: 10,000 rows/s; ``--quick`` the same for a shorter window). The
figures that decide it, per tier and place: marker freshness p50/p99 against the
targets (priority p99 under 5 s; standard within its SLA, 60 s), rows captured per
second against the rows the workload changed, CPU seconds per 1,000 captured rows of
the pipeline's processes (target at most 0.15), and the backlog left at the window's end.
"""

from __future__ import annotations

from typing import Any

from billing_sync.bench.context import BenchContext
from billing_sync.bench.drivers import DagsterDriver
from billing_sync.bench.report import Column, Report, Row
from billing_sync.bench.tail import FRESHNESS_COLUMNS, prepare_data, tail_run
from billing_sync.config import default_tiers

PRIORITY_P99_TARGET = 5.0
CPU_PER_1000_TARGET = 0.15

CAPACITY_COLUMNS = [
    Column("shards", "shards", "{:d}"),
    Column("tier", "tier", align="<"),
    Column("place", "visible in", align="<"),
    *FRESHNESS_COLUMNS,
    Column("target", "target p99 s", "{:.0f}"),
    Column("verdict", "verdict", align="<"),
    Column("changed_per_second", "changed rows/s", "{:,.0f}"),
    Column("captured_per_second", "captured rows/s", "{:,.0f}"),
    Column("cpu_per_1000", "CPU s/1k rows", "{:.3f}"),
    Column("backlog_rows", "backlog rows", "{:,}"),
    Column("seconds_behind_at_end", "behind at end s", "{:.1f}"),
]


def targets() -> dict[str, float]:
    """p99 targets per tier: priority 5 s (issue 15), the others their SLA."""
    slas: dict[str, float] = {
        name: tier.freshness_sla_seconds for name, tier in default_tiers().items()
    }
    return {**slas, "priority": PRIORITY_P99_TARGET}


def verdicts(rows: list[Row]) -> list[Row]:
    """Each row with its tier's target and whether its p99 met it."""
    goal = targets()
    judged = []
    for row in rows:
        target = goal[row["tier"]]
        p99 = row.get("p99")
        met = p99 is not None and p99 < target
        judged.append({**row, "target": target, "verdict": "met" if met else "missed"})
    return judged


def shard_settings(shards: int) -> dict[str, Any]:
    """The engine's default tiers, priority and standard split into ``shards`` shards
    (billing_sync.shards: each shard its own sensor, run and concurrency key)."""
    if shards == 1:
        return {}
    tiers = default_tiers()
    return {
        "tiers": {
            name: {**tiers[name].model_dump(), "shards": shards}
            for name in ("priority", "standard")
        }
    }


def run_capacity(ctx: BenchContext) -> Report:
    options = ctx.options
    rate = options.capacity_rate
    rows: list[Row] = []
    details: dict[str, Any] = {"targets": targets(), "by_shards": {}}
    for shards in options.capacity_shards:
        # Fresh data per shard count: each run starts from the same caught-up state.
        data = prepare_data(
            ctx, f"capacity_{shards}", accounts=options.tail_accounts,
            settings=shard_settings(shards), load_first=options.tail_first_load,
        )  # fmt: skip
        driver = DagsterDriver(data.pipeline, ctx.bench_dir / f"capacity_{shards}")
        label = f"{shards} shard{'s' if shards > 1 else ''}"
        found, run_details = tail_run(
            ctx, data, driver, rates=(rate,), seconds=options.capacity_seconds, label=label
        )
        rows += [{**row, "shards": shards} for row in verdicts(found)]
        details["by_shards"][shards] = {**run_details, "first_load": data.first_load}
    report = Report(
        "capacity",
        f"Capacity: {rate:,.0f} changed rows/s target through the Dagster daemon and sensors "
        f"({options.tail_accounts:,} accounts, {options.capacity_seconds:.0f} s window, "
        f"engine defaults; shards per tier: {', '.join(map(str, options.capacity_shards))})",
        CAPACITY_COLUMNS,
        rows,
        details=details,
    )
    for shards in options.capacity_shards:
        first: dict[str, Any] = next((r for r in rows if r["shards"] == shards), {})
        cpu = first.get("cpu_per_1000")
        report.notes.append(
            f"{shards} shard(s): CPU per 1,000 captured rows "
            f"{cpu if cpu is not None else float('nan'):.3f} s (target {CPU_PER_1000_TARGET}; "
            "pipeline processes only: Dagster daemon, code server, run workers, not PostgreSQL "
            f"nor the simulator); the workload changed {first.get('changed_per_second', 0):,.0f}"
            f" rows/s of the {rate:,.0f} asked (the simulator shares the cores), the pipeline"
            f" captured {first.get('captured_per_second', 0):,.0f} rows/s; backlog at the end "
            f"{first.get('backlog_rows', 0):,} rows."
        )
    return report
