"""Scenario ``burst``: a bill run's burst into the standard and bulk tables, with tier
isolation judged on the priority tier (issue 15, item 3).

The simulator's normal workload runs at ``burst_workload_rate`` while the real Dagster
daemon and sensors sync every tier (engine defaults) and marker rows are watched from
outside (:mod:`.markers`). After a warm-up and a baseline window, a bill run
(:mod:`.bill_run`) writes ``burst_rows`` changed rows into ``STATEMENT`` (standard) and
``LEDGER`` (bulk) within ``burst_seconds`` (the full run: 2 million in 5 minutes). The
figures:

- marker freshness per tier and place before, during the bill run, and while its rows
  drain (target: priority p99 under 10 s throughout, aim 5 s);
- the drain: the moment both tables' watermarks passed the bill run's last commit, the
  rows per second from its start to then, and the backlog sampled every 2 s;
- parity after: the bill run's rows counted in the warehouse, and ``verify`` (key-range
  hashes against the source, then the cache) of the burst's and the priority tables.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg

from billing_sync.bench import bench_hmac_key
from billing_sync.bench.bill_run import BillRun, burst_rows_in_warehouse
from billing_sync.bench.context import BenchContext
from billing_sync.bench.drivers import DagsterDriver
from billing_sync.bench.markers import Markers
from billing_sync.bench.report import Column, Report, Row
from billing_sync.bench.tail import (
    FRESHNESS_COLUMNS,
    PLACES,
    TIERS,
    TailData,
    _freshness_figures,
    _warm_up,
    backlog,
    prepare_data,
    progress,
)
from billing_sync.simulator import Workload
from billing_sync.simulator.clock import ICOMS_TIMEZONE

BURST_TABLES = ("STATEMENT", "LEDGER")
VERIFIED = ("icoms.STATEMENT", "icoms.LEDGER", "icoms.ACCOUNT", "icoms.PAYMENT",
            "icoms.ADJUSTMENT")  # fmt: skip
PHASES = ("before", "bill run", "drain")

COLUMNS = [
    Column("phase", "phase", align="<"),
    Column("tier", "tier", align="<"),
    Column("place", "visible in", align="<"),
    *FRESHNESS_COLUMNS,
    Column("markers", "markers", "{:,}"),
    Column("seconds", "phase s", "{:.0f}"),
]


def _source_local_now(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT (now() AT TIME ZONE '{ICOMS_TIMEZONE}')::timestamp").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def _caught_up(url: str, tables: tuple[str, ...]) -> dict[str, datetime | None]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT source_table, caught_up_to FROM billing_sync.watermark"
            " WHERE system = 'icoms' AND source_table = ANY(%s)",
            (list(tables),),
        ).fetchall()
    return {row[0]: row[1] for row in rows}


@dataclass
class _Moments:
    """Epoch seconds of the scenario's steps (``drained``: None when it never drained)."""

    warm_from: float = 0.0
    before: float = 0.0
    bill_run: float = 0.0
    drain: float = 0.0  # the bill run's end
    drained: float | None = None
    end: float = 0.0


class _Sampler:
    """Every 2 s: the bill run's rows written, the burst tables' backlog (source rows past
    their watermarks) and the priority tables' seconds behind."""

    def __init__(self, data: TailData, bill_run: BillRun) -> None:
        self.data, self.bill_run = data, bill_run
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="burst-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        priority = {m.table for m in self.data.catalog.tables if m.tier == "priority"}
        while not self._stop.wait(2.0):
            try:
                now = backlog(self.data)
            except psycopg.Error:
                continue
            behind = now["seconds_behind"]
            self.samples.append({
                "at": time.time(),
                "written": self.bill_run.progress.rows,
                "burst_backlog_rows": sum(now["rows_per_table"].get(t, 0) for t in BURST_TABLES),
                "priority_seconds_behind": max(
                    (behind[t] for t in priority if behind.get(t) is not None), default=None),
            })  # fmt: skip


def _wait_drained(url: str, until: datetime, timeout: float) -> float | None:
    """Epoch seconds when both burst tables' watermarks reached source time ``until``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        marks = _caught_up(url, BURST_TABLES)
        if len(marks) == len(BURST_TABLES) and all(v is not None and v >= until
                                                   for v in marks.values()):  # fmt: skip
            return time.time()
        time.sleep(0.5)
    return None


def _verify(data: TailData) -> list[dict[str, Any]]:
    """``verify`` without repair of the burst's and the priority tables: what differs."""
    # why: the engine's stack loads only for this step of the scenario
    from billing_sync.config import load_settings
    from billing_sync.engine.sync import SyncEngine
    from billing_sync.reconcile.verify import select_tables, verify_table

    pipeline = data.pipeline
    settings = load_settings(
        env={}, state_dir=pipeline.state_dir, source_url=pipeline.source,
        warehouse_url=pipeline.warehouse, cache_path=pipeline.cache, hmac_key=bench_hmac_key(),
    )  # fmt: skip
    found = []
    with SyncEngine.from_settings(settings) as engine:
        for catalog, mapping in select_tables(engine, VERIFIED):
            v = verify_table(engine, catalog, mapping, repair=False)
            found.append({
                "table": v.name, "source_rows": v.source_rows, "missing": len(v.warehouse.missing),
                "stale": len(v.warehouse.stale), "extra": len(v.warehouse.extra),
                "pending": v.pending, "quarantined": v.quarantined,
                "cache_differences": None if v.cache is None else v.cache.total,
                "seconds": round(v.seconds, 1),
            })  # fmt: skip
    return found


def run_burst(ctx: BenchContext) -> Report:
    options = ctx.options
    data = prepare_data(ctx, "burst", accounts=options.tail_accounts, settings={},
                        load_first=options.tail_first_load)  # fmt: skip
    driver = DagsterDriver(data.pipeline, ctx.bench_dir / "burst")
    markers = Markers(
        source_url=data.pipeline.source, warehouse_url=data.pipeline.warehouse,
        cache_path=data.pipeline.cache, catalog=data.catalog, interval=options.marker_interval,
    )  # fmt: skip
    bill_run = BillRun(data.pipeline.source, rows=options.burst_rows,
                       seconds=options.burst_seconds)  # fmt: skip
    sampler = _Sampler(data, bill_run)
    workload = Workload(data.pipeline.source, rate=options.burst_workload_rate)
    moments = _Moments()
    markers.start()
    driver.start()
    workload.start()
    try:
        moments.warm_from = time.time()
        warm = _warm_up(driver, markers, since=moments.warm_from, timeout=180.0)
        moments.before = time.time()
        progress(f"warm: baseline {options.burst_baseline_seconds:.0f} s, then a bill run of "
                 f"{options.burst_rows:,} rows in {options.burst_seconds:.0f} s")  # fmt: skip
        time.sleep(options.burst_baseline_seconds)
        moments.bill_run = time.time()
        sampler.start()
        bill_run.start()
        if not bill_run.join(timeout=options.burst_seconds * 4 + 120):
            bill_run.stop()
        moments.drain = time.time()
        last_commit = _source_local_now(data.pipeline.source)
        progress(f"bill run wrote {bill_run.progress.rows:,} rows in "
                 f"{moments.drain - moments.bill_run:.0f} s; draining")  # fmt: skip
        moments.drained = _wait_drained(
            data.pipeline.warehouse, last_commit, timeout=max(300.0, options.burst_seconds * 3)
        )
        moments.end = time.time()
        if not driver.alive():
            raise RuntimeError(f"the pipeline stopped during the burst:\n{driver.log_tail()}")
    finally:
        workload.stop()
        sampler.stop()
        bill_run.stop()
    settle = time.monotonic() + 60
    while time.monotonic() < settle and not markers.all_seen(
        since=moments.before, until=moments.end or time.time(), places=PLACES
    ):
        time.sleep(0.5)
    markers.stop()
    driver.stop()
    runs = driver.run_stats(since=moments.warm_from)
    held = burst_rows_in_warehouse(data.pipeline.warehouse)
    verified = _verify(data)
    rows = _phase_rows(markers, moments)
    written = bill_run.progress.rows
    drained_at = moments.drained
    writing = max(1e-9, moments.drain - moments.bill_run)
    drain = {
        "rows_written": written,
        "commits": bill_run.progress.commits,
        "write_seconds": writing,
        "write_rows_per_second": written / writing,
        "drained": drained_at is not None,
        "seconds_to_drain_after_bill_run": None if drained_at is None
        else drained_at - moments.drain,
        "drain_rows_per_second": None if drained_at is None
        else written / (drained_at - moments.bill_run),
        "max_backlog_rows": max((s["burst_backlog_rows"] for s in sampler.samples), default=None),
        "rows_in_warehouse": held,
        "lost": written - held,
        "errors": bill_run.progress.errors,
    }  # fmt: skip
    report = Report(
        "burst",
        f"Bill run: {options.burst_rows:,} changed rows into STATEMENT (standard) and LEDGER "
        f"(bulk) in {options.burst_seconds:.0f} s, over the workload at "
        f"{options.burst_workload_rate:,.0f} rows/s, through the Dagster daemon and sensors "
        f"({options.tail_accounts:,} accounts, engine defaults)",
        COLUMNS,
        rows,
        details={
            "drain": drain,
            "verify": verified,
            "samples": sampler.samples,
            "moments": asdict(moments),
            "warmed_up": warm,
            "dagster_runs": runs,
            "first_load": data.first_load,
        },
    )
    _notes(report, rows, drain, verified)
    return report


def _phase_rows(markers: Markers, moments: _Moments) -> list[Row]:
    bounds = {
        "before": (moments.before, moments.bill_run),
        "bill run": (moments.bill_run, moments.drain),
        "drain": (moments.drain, moments.drained or moments.end),
    }
    rows: list[Row] = []
    for phase in PHASES:
        since, until = bounds[phase]
        for tier in TIERS:
            for place in PLACES:
                values = [
                    value
                    for log in markers.logs.values()
                    if log.table.tier == tier
                    for value in log.freshness(place, since=since, until=until)
                ]
                rows.append({"phase": phase, "tier": tier, "place": place,
                             "seconds": until - since, **_freshness_figures(values)})  # fmt: skip
    return rows


def _notes(report: Report, rows: list[Row], drain: dict[str, Any], verified: list[Any]) -> None:
    during = [r for r in rows if r["tier"] == "priority" and r["place"] == "warehouse"
              and r["phase"] in ("bill run", "drain") and r.get("p99") is not None]  # fmt: skip
    worst = max((r["p99"] for r in during), default=None)
    verdict = "no marker" if worst is None else ("met" if worst < 10 else "MISSED")
    report.notes.append(
        f"priority p99 in the warehouse during the bill run and its drain: "
        f"{worst if worst is not None else float('nan'):.2f} s (target < 10 s, aim < 5 s): "
        f"{verdict}"
    )
    rate = drain["drain_rows_per_second"]
    report.notes.append(
        f"bill run: {drain['rows_written']:,} rows written in {drain['write_seconds']:.0f} s "
        f"({drain['write_rows_per_second']:,.0f} rows/s); "
        + (f"drained {drain['seconds_to_drain_after_bill_run']:.1f} s after its last commit, "
           f"{rate:,.0f} rows/s from its start; " if rate is not None else "NOT drained; ")
        + f"most rows waiting {drain['max_backlog_rows'] or 0:,}"
    )  # fmt: skip
    wrong = sum(v["missing"] + v["stale"] for v in verified)
    report.notes.append(
        f"parity after: {drain['rows_in_warehouse']:,} of the bill run's rows in the warehouse "
        f"({drain['lost']:,} lost); verify of {', '.join(v['table'] for v in verified)}: "
        f"{wrong} missing or stale"
    )
