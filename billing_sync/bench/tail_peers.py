"""Scenario ``tail-peers``: billing-sync's tail against dlt and Sling, same table, same run.

The peers' table (:mod:`billing_sync.simulator.plain`, ``updated_at timestamp(6)`` set to
``now()``, index on ``(updated_at, id)``) is seeded, and 4 writers update it at the tail
rate for the whole scenario. Two parts:

1. **Freshness and cost**, one contender at a time under the workload, each into its own
   database: start it, warm up (until a marker committed after the start shows), measure a
   window, stop it. Per contender: marker freshness p50/p95/p99/max (commit in the source
   to the first 0.1 s poll that sees it in the target), rows applied per second in the
   target (``n_tup_ins + n_tup_upd`` of its table), CPU seconds per 1,000 rows (its
   processes plus the PostgreSQL server's CPU above what the workload alone costs, measured
   first), source rows read per row applied (``pg_stat_statements``, reads only).
2. **Correctness under adversity**, all contenders at once, each still on its own copy:
   a transaction stamps 200 rows at its start and commits ``hold`` seconds later (45 s; less
   in ``--quick``), 20,000 rows share one stamp, 50 rows are hard-deleted, 100 rows are
   stamped 20 s in the past. Then the workload stops, one more marker is inserted and
   every contender has drained once it shows; each target is compared with the source row
   by row (:func:`.plain_targets.compare`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from billing_sync.bench.context import BenchContext
from billing_sync.bench.data import database_of
from billing_sync.bench.drivers import Pipeline
from billing_sync.bench.peer_tail_contenders import (
    BillingSyncDagster,
    TailContender,
    dlt_fresh_process,
    dlt_long_lived,
    sling_loop,
    unavailable,
    wait_until,
)
from billing_sync.bench.plain_targets import (
    PlainMarkers,
    compare,
    rows_written,
    source_reads,
    wait_visible,
)
from billing_sync.bench.report import Column, Report, Row
from billing_sync.bench.tail import FRESHNESS_COLUMNS, _freshness_figures, progress
from billing_sync.simulator import plain
from billing_sync.simulator.plain_adversity import (
    AdversityIds,
    LongTransaction,
    back_dated,
    hard_deletes,
    plan,
    same_stamp_burst,
)

WARM_UP_TIMEOUT = 240.0
DLT_LAG_SECONDS = 2.0


CONTENDERS = ("sling", "dlt", "dlt-lag", "dlt-fresh", "billing-sync")


@dataclass(frozen=True)
class Sizes:
    """The scenario's sizes, from the options (full, ``--quick`` or the smoke test's)."""

    rows: int
    rate: float
    window: float
    hold: float
    burst: int
    deletes: int
    back_dated: int
    baseline: float
    drain_timeout: float

    @classmethod
    def of(cls, ctx: BenchContext) -> Sizes:
        options = ctx.options
        rows = options.peers_tail_rows
        small = rows < 100_000
        return cls(
            rows=rows,
            rate=options.rates[0],
            window=options.peers_tail_window,
            hold=options.peers_tail_hold,
            burst=min(20_000, rows // 6),
            deletes=min(50, rows // 300),
            back_dated=min(100, rows // 150),
            baseline=2.0 if rows < 10_000 else 5.0 if small else 10.0,
            drain_timeout=120.0 if small else 180.0,
        )


def _contenders(
    ctx: BenchContext, source: str, work: Path
) -> tuple[list[TailContender], list[Row]]:
    """The contenders that can run here, and rows for those that cannot."""
    wanted = set(ctx.options.peers_tail_contenders or CONTENDERS)
    made: list[TailContender] = []
    missing: list[Row] = []

    def database(name: str) -> str:
        return ctx.server.database(f"bench_tp_{name}")

    if "sling" in wanted and (why := unavailable("sling")) is not None:
        missing.append({"contender": "Sling", "status": "unavailable", "output": why})
    elif "sling" in wanted:
        made.append(sling_loop(source, database("sling"), work))
    if wanted & {"dlt", "dlt-lag", "dlt-fresh"} and (why := unavailable("dlt")) is not None:
        missing.append({"contender": "dlt", "status": "unavailable", "output": why})
        wanted -= {"dlt", "dlt-lag", "dlt-fresh"}
    if "dlt" in wanted:
        made.append(dlt_long_lived(source, database("dlt_long"), work, lag=None))
    if "dlt-lag" in wanted:
        made.append(dlt_long_lived(source, database("dlt_lag"), work, lag=DLT_LAG_SECONDS))
    if "dlt-fresh" in wanted:
        made.append(dlt_fresh_process(source, database("dlt_fresh"), work))
    if "billing-sync" not in wanted:
        return made, missing
    pipeline = Pipeline(
        source=source,
        warehouse=database("wh"),
        cache=work / "cache.duckdb",
        state_dir=work / "state",
        settings={"systems": [plain.SYSTEM]},
    )
    made.append(BillingSyncDagster(pipeline, work / "billing-sync"))
    return made, missing


def _server_cpu(ctx: BenchContext) -> float:
    return ctx.server.cpu_seconds() or 0.0


def _reads(ctx: BenchContext, database: str) -> float:
    if ctx.server.statements:  # pg_stat_statements is not there: no figure
        return float("nan")
    return source_reads(ctx.server.url, database)


def _baseline(ctx: BenchContext, seconds: float) -> float:
    """The server's CPU seconds per second with the workload alone."""
    before = _server_cpu(ctx)
    time.sleep(seconds)
    return (_server_cpu(ctx) - before) / seconds


def measure(
    ctx: BenchContext,
    contender: TailContender,
    *,
    source: str,
    sizes: Sizes,
    baseline: float,
    workload: plain.PlainWorkload,
) -> Row:
    """Part 1 for one contender: warm up, one window, figures."""
    database = database_of(source)
    markers = PlainMarkers(source, contender.target, ctx.options.marker_interval)
    started = time.time()
    contender.start()
    markers.start()
    row: Row = {"contender": contender.name, "settings": contender.settings}
    try:
        warm = wait_until(
            lambda: markers.seen_after(started + 1) or not contender.alive(),
            timeout=WARM_UP_TIMEOUT,
        )
        progress(
            f"{contender.name}: warm after {time.time() - started:.0f} s"
            + ("" if warm else " (did not warm up; measuring anyway)")
        )
        cpu, server, reads = contender.cpu_seconds(), _server_cpu(ctx), _reads(ctx, database)
        applied, changed, runs = (
            rows_written(contender.target),
            workload.rows_changed,
            contender.runs(),
        )
        since = time.time()
        time.sleep(sizes.window)
        until = time.time()
        window = until - since
        cpu = contender.cpu_seconds() - cpu
        server = _server_cpu(ctx) - server - baseline * window
        reads = _reads(ctx, database) - reads
        markers_in_window = len(markers.freshness(since=since, until=until))
        changed = workload.rows_changed - changed + markers_in_window
        runs = contender.runs() - runs
        wait_until(
            lambda: all(v != float("inf") for v in markers.freshness(since=since, until=until)),
            timeout=15.0,
        )
        applied = rows_written(contender.target) - applied
    finally:
        markers.stop()
        contender.stop()
    figures = _freshness_figures(markers.freshness(since=since, until=until))
    row.update(figures)
    row.update(
        status="ok" if not contender.problems() else "failed",
        output="; ".join(contender.problems())[-600:] or None,
        window_seconds=round(window, 1),
        changed_per_second=changed / window,
        # Kept up: every marker of the window showed (none waits in a backlog).
        sustained_per_second=changed / window if figures["never_seen"] == 0 else None,
        written_per_second=applied / window,
        runs=runs,
        runs_per_second=runs / window,
        cpu_contender=cpu,
        cpu_server=server,
        cpu_per_1000=(cpu + max(server, 0.0)) / changed * 1000 if changed else None,
        rows_read_per_captured=reads / changed if changed else None,
        warm_up_seconds=round(since - started, 1),
        marker_errors=markers.errors,
    )
    return row


def adversity(source: str, ids: AdversityIds, sizes: Sizes) -> dict[str, Any]:
    """Part 2's events, in order; returns what each did."""
    long = LongTransaction(source, ids.long_transaction, hold_seconds=sizes.hold)
    long.start()
    done: dict[str, Any] = {"long transaction rows": long.rows, "hold seconds": sizes.hold}
    with psycopg.connect(source, autocommit=True) as conn:
        time.sleep(1.0)
        done["same stamp rows"] = same_stamp_burst(conn, ids.same_stamp)
        time.sleep(1.0)
        done["hard deletes"] = hard_deletes(conn, ids.deletes)
        time.sleep(1.0)
        done["back-dated rows (20 s)"] = back_dated(conn, ids.back_dated, seconds=20.0)
    long.join(timeout=sizes.hold + 60)
    if long.error:
        done["error"] = long.error
    return done


def correctness(
    source: str,
    contenders: list[TailContender],
    ids: AdversityIds,
    sizes: Sizes,
    workload: plain.PlainWorkload,
) -> dict[str, Any]:
    """Part 2: all contenders at once through the adversity, drained, compared."""
    targets = {c.name: c.target for c in contenders}
    for contender in contenders:
        contender.start()
    try:
        caught_up = wait_visible(targets, source, timeout=WARM_UP_TIMEOUT)
        progress(f"all contenders running; adversity for {sizes.hold:.0f} s")
        events = adversity(source, ids, sizes)
        time.sleep(2.0)
        workload.stop()
        drained = wait_visible(targets, source, timeout=sizes.drain_timeout)
        shown = [
            f"{k} {v:.1f} s" if v is not None else f"{k} not drained" for k, v in drained.items()
        ]
        progress(f"drained: {', '.join(shown)}")
    finally:
        for contender in contenders:
            contender.stop()
    results = {c.name: compare(source, c.target, ids) for c in contenders}
    repaired: dict[str, Any] = {}
    for contender in contenders:
        if isinstance(contender, BillingSyncDagster):
            report = contender.parity_check()
            repaired = {"contender": contender.name, "verify": report,
                        **compare(source, contender.target, ids)}  # fmt: skip
    return {
        "after_parity_check": repaired,
        "events": events,
        "caught_up_seconds": caught_up,
        "drain_seconds": drained,
        "per_contender": results,
    }


COLUMNS = [
    Column("contender", "contender", align="<"),
    *FRESHNESS_COLUMNS,
    Column("markers", "markers", "{:,}"),
    Column("sustained_per_second", "rows/s sustained", "{:,.0f}"),
    Column("written_per_second", "rows/s written", "{:,.0f}"),
    Column("cpu_per_1000", "CPU s/1k rows", "{:.3f}"),
    Column("rows_read_per_captured", "src rows read/row", "{:.2f}"),
    Column("missing", "missing", "{:,}"),
    Column("duplicated", "dup", "{:,}"),
    Column("stale", "stale", "{:,}"),
    Column("long_transaction_lost", "long txn rows wrong", "{:,}"),
]


def run_tail_peers(ctx: BenchContext) -> Report:
    sizes = Sizes.of(ctx)
    work = ctx.workdir("tail-peers")
    source = ctx.server.database("bench_tp_source")
    with psycopg.connect(source, autocommit=True) as conn:
        plain.seed(conn, rows=sizes.rows)
    ids = plan(
        sizes.rows, burst_rows=sizes.burst, deletes=sizes.deletes, back_dated_rows=sizes.back_dated
    )
    contenders, rows = _contenders(ctx, source, work)
    workload = plain.PlainWorkload(source, rate=sizes.rate, id_range=ids.floor - 1)
    workload.start()
    try:
        baseline = _baseline(ctx, sizes.baseline)
        progress(
            f"seeded {sizes.rows:,} rows; workload {sizes.rate:,.0f} rows/s, server "
            f"{baseline:.2f} CPU s/s for it alone"
        )
        measured = [
            measure(ctx, c, source=source, sizes=sizes, baseline=baseline, workload=workload)
            for c in contenders
        ]
        checked = correctness(source, contenders, ids, sizes, workload)
    finally:
        workload.stop()
    for row in measured:
        found = checked["per_contender"][row["contender"]]
        row.update(
            {k: found[k] for k in ("missing", "duplicated", "stale", "deleted_kept")},
            long_transaction_lost=found["wrong_by_cause"]["long transaction"],
        )
    report = Report(
        "tail-peers",
        f"The tail against the peers: the peers' table ({sizes.rows:,} rows, updated_at "
        f"timestamp(6) = now()), {sizes.rate:,.0f} rows/s from 4 writers, {sizes.window:.0f} s "
        "window per contender",
        COLUMNS,
        measured + rows,
        details={
            "sizes": sizes.__dict__,
            "baseline_server_cpu_per_second": baseline,
            "correctness": checked,
            "workload_errors": workload.errors,
        },
    )
    summarize(report, sizes)
    return report


def summarize(report: Report, sizes: Sizes) -> None:
    by_name = {row["contender"]: row for row in report.rows if row.get("status") == "ok"}
    ours = next((row for name, row in by_name.items() if name.startswith("billing-sync")), None)
    for name, row in by_name.items():
        report.notes.append(f"{name}: {row['settings']}")
    for name, row in by_name.items():
        if ours is None or row is ours or not ours.get("p99") or not row.get("p99"):
            continue
        report.notes.append(f"billing-sync p99 / {name} p99 = {ours['p99'] / row['p99']:.1f}")
    repaired = report.details["correctness"].get("after_parity_check") or {}
    for name, row in by_name.items():
        causes = report.details["correctness"]["per_contender"][name]["wrong_by_cause"]
        report.notes.append(
            f"{name}: {row['missing']:,} missing, {row['duplicated']:,} duplicated, "
            f"{row['stale']:,} stale (of which {row['deleted_kept']:,} deleted in the source, "
            f"still live in the target); the {sizes.hold:.0f}-s transaction's rows: "
            f"{row['long_transaction_lost']:,} wrong; wrong rows by cause: "
            + ", ".join(f"{cause} {count:,}" for cause, count in causes.items())
        )
    if repaired:
        report.notes.append(
            f"{repaired['contender']} after its parity check (verify --repair, which Dagster "
            f"runs every 10 minutes; deletes are flagged _is_deleted): {repaired['missing']:,} "
            f"missing, {repaired['duplicated']:,} duplicated, {repaired['stale']:,} stale"
        )
    report.notes.append(
        "Freshness: a marker row's commit in the source to the first 0.1 s poll that sees it "
        "in the contender's table; one contender at a time under the workload. Per 1k rows and "
        "per row: per row the workload (and the markers) changed in the window, which every "
        "contender must capture. rows/s sustained: that rate, when every marker of the window "
        "showed; rows/s written: rows inserted or updated in its table (re-reads included). "
        "CPU: the contender's processes plus the PostgreSQL server above the workload's own cost. "
        "Correctness: all contenders at once, each into its own database, compared with the "
        "source row by row after the workload stopped and each drained."
    )
