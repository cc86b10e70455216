"""Runs scenarios in order, prints their tables and writes their JSON reports."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from billing_sync.bench.burst import run_burst
from billing_sync.bench.capacity import run_capacity
from billing_sync.bench.context import BenchContext, BenchOptions
from billing_sync.bench.feed import run_feed
from billing_sync.bench.hot import run_hot
from billing_sync.bench.machine import describe, machine_info
from billing_sync.bench.paths import run_paths
from billing_sync.bench.report import Report, write_json
from billing_sync.bench.scale import run_scale
from billing_sync.bench.server import start_server
from billing_sync.bench.snapshot import run_snapshot
from billing_sync.bench.tail import run_shapes, run_tail
from billing_sync.bench.tail_peers import run_tail_peers


def _snapshot(ctx: BenchContext) -> list[Report]:

    return [run_snapshot(ctx)]


def _tail(ctx: BenchContext) -> list[Report]:

    return run_tail(ctx)


def _shapes(ctx: BenchContext) -> list[Report]:

    return [run_shapes(ctx)]


def _scale(ctx: BenchContext) -> list[Report]:

    return [run_scale(ctx)]


def _paths(ctx: BenchContext) -> list[Report]:

    return [run_paths(ctx)]


def _hot(ctx: BenchContext) -> list[Report]:

    return [run_hot(ctx)]


def _capacity(ctx: BenchContext) -> list[Report]:

    return [run_capacity(ctx)]


def _feed(ctx: BenchContext) -> list[Report]:

    return run_feed(ctx)


SCENARIOS: dict[str, Callable[[BenchContext], list[Report]]] = {
    "snapshot": _snapshot,
    "paths": _paths,
    "tail": _tail,
    "shapes": _shapes,
    "scale": _scale,
    "hot": _hot,
    "capacity": _capacity,
    "burst": lambda ctx: [run_burst(ctx)],
    "tail-peers": lambda ctx: [run_tail_peers(ctx)],
    "feed": _feed,
}


def say(message: str) -> None:
    print(message, flush=True)


def run_bench(
    scenarios: list[str], options: BenchOptions, *, state_dir: Path, keep_server: bool = False
) -> list[Report]:
    """Run ``scenarios`` (names of :data:`SCENARIOS`, or ``all``); return their reports."""
    names = list(SCENARIOS) if "all" in scenarios else scenarios
    server = start_server(state_dir)
    reports: list[Report] = []
    try:
        ctx = BenchContext(options, state_dir, server, machine_info(server.url))
        say(f"machine: {describe(ctx.machine)}")
        if server.statements:
            say(f"note: {server.statements}; source footprint figures are left out")
        for name in names:
            started = time.monotonic()
            say(f"\n== {name} ==")
            for report in SCENARIOS[name](ctx):
                ctx.results[report.scenario] = report
                reports.append(report)
                path = write_json(
                    ctx.reports_dir / f"{report.scenario}.json",
                    report.to_json(ctx.machine, options.as_dict()),
                )
                say(report.text())
                say(f"({report.scenario}: {time.monotonic() - started:.0f} s; report {path})")
    finally:
        if not keep_server:
            server.stop()
    return reports


def main_exit_code(reports: list[Report]) -> int:
    """Non-zero when a contender of ours failed or wrote wrong output (peers may fail)."""
    for report in reports:
        for row in report.rows:
            if row.get("contender", "billing-sync").startswith("billing-sync") and row.get(
                "status"
            ) in ("failed", "wrong output"):
                print(f"billing-sync {report.scenario}: {row.get('output')}", file=sys.stderr)
                return 1
    return 0
