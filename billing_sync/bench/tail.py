"""Scenarios ``tail`` and ``shapes``: sustained change rates through the real Dagster daemon.

The simulated biller is seeded, loaded once (its first load, timed: the ``scale``
scenario reports it), then the change workload runs at a rate while marker rows (see
:mod:`.markers`) are committed every ``marker_interval`` and watched in the warehouse
and the cache from outside. After a warm-up (until markers committed after the pipeline
started have shown in both places for both tiers) one measurement window runs; then the
window's markers get a grace period to show. Figures of the window:

- freshness p50/p95/p99/max per tier and place (commit in the source to first poll that
  sees it; ``never`` when a marker did not show within the grace period);
- rows/s: changed by the workload, and captured by the pipeline (``batch_log``);
- CPU seconds per 1,000 captured rows of the pipeline's processes (daemon, code server,
  run workers; not PostgreSQL);
- source footprint from ``pg_stat_statements``: read statements per second, rows they
  returned per captured row, buffer blocks they touched per captured row;
- backlog at the window's end: source rows past the watermarks, seconds behind.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from billing_sync.bench import bench_hmac_key, mariadb_source
from billing_sync.bench.context import BenchContext
from billing_sync.bench.drivers import (
    DagsterDriver,
    Driver,
    EngineDriver,
    Pipeline,
)
from billing_sync.bench.markers import Markers, insert_marker_rows
from billing_sync.bench.measure import TreeCpu, run_worker
from billing_sync.bench.report import Column, Report, Row, mb, percentile
from billing_sync.bench.server import (
    breakdown_delta,
    source_statement_breakdown,
    source_statements,
)
from billing_sync.capture.cursor import encode_cyymmdd_hhmmss
from billing_sync.config import SourceCatalog, TierSettings, load_catalog, load_settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.simulator import Workload, seed
from billing_sync.simulator.clock import ICOMS_TIMEZONE

TIERS = ("priority", "standard")
PLACES = ("warehouse", "cache")
WARM_UP_TIMEOUT = 180.0

FRESHNESS_COLUMNS = [
    Column("p50", "p50 s", "{:.2f}"),
    Column("p95", "p95 s", "{:.2f}"),
    Column("p99", "p99 s", "{:.2f}"),
    Column("max", "max s", "{:.2f}"),
]
TAIL_COLUMNS = [
    Column("engine", "source", align="<"),
    Column("rate", "target rows/s", "{:,.0f}"),
    Column("tier", "tier", align="<"),
    Column("place", "visible in", align="<"),
    *FRESHNESS_COLUMNS,
    Column("markers", "markers", "{:,}"),
    Column("captured_per_second", "captured rows/s", "{:,.0f}"),
    Column("cpu_per_1000", "CPU s/1k rows", "{:.3f}"),
    Column("source_queries_per_second", "source q/s", "{:.1f}"),
    Column("rows_read_per_captured", "src rows read/captured", "{:.2f}"),
    Column("backlog_rows", "backlog rows", "{:,}"),
]


@dataclass
class TailData:
    pipeline: Pipeline
    catalog: SourceCatalog
    source_database: str
    first_load: dict[str, Any]
    engine: str = "postgresql"  # or "mariadb": the ICOMS biller on MariaDB


def prepare_mariadb_data(ctx: BenchContext, name: str, *, accounts: int,
                         settings: dict[str, Any]) -> TailData:  # fmt: skip
    """:func:`prepare_data` with the biller on MariaDB (:mod:`.mariadb_source`)."""
    work = ctx.workdir(f"{name}-mariadb")
    warehouse = ctx.server.database(f"bench_{name}_mariadb_wh")
    source, catalog, settings, seeded = mariadb_source.prepare(
        work, name, server=ctx.options.mariadb_url, accounts=accounts, warehouse=warehouse,
        settings=settings,
    )  # fmt: skip
    progress(f"seeded {sum(seeded.values()):,} rows on MariaDB; the first run loads them")
    pipeline = Pipeline(source=source, warehouse=warehouse, cache=work / "cache.duckdb",
                        state_dir=work / "state", settings=settings)  # fmt: skip
    database = catalog.schema_name
    return TailData(pipeline, catalog, database, {"skipped": True}, engine="mariadb")


def default_settings(*, batches_per_run: int | None = None) -> dict[str, Any]:
    """The engine's defaults, with ``batches_per_run`` for both tiers when given."""
    if batches_per_run is None:
        return {}
    return {
        "tiers": {
            "priority": {"batches_per_run": batches_per_run, "freshness_sla_seconds": 10},
            "standard": {"batches_per_run": batches_per_run, "freshness_sla_seconds": 60},
        }
    }


def prepare_data(
    ctx: BenchContext,
    name: str,
    *,
    accounts: int,
    settings: dict[str, Any],
    load_first: bool = True,
) -> TailData:
    """Fresh source and warehouse databases, the seeded biller with its marker rows, and
    the first load by the engine (in a worker: its time and peak RSS are its own; with
    ``load_first`` false the pipeline's first run does it, untimed)."""
    work = ctx.workdir(name)
    source_db = f"bench_{name}_source"
    source = ctx.server.database(source_db)
    warehouse = ctx.server.database(f"bench_{name}_wh")
    with psycopg.connect(source, autocommit=True) as conn:
        seeded = seed(conn, accounts=accounts)
        insert_marker_rows(conn, "icoms")
    progress(f"seeded {sum(seeded.values()):,} source rows; first load")
    pipeline = Pipeline(
        source=source,
        warehouse=warehouse,
        cache=work / "cache.duckdb",
        state_dir=work / "state",
        settings=settings,
    )
    if not load_first:
        settings_ = load_settings(
            env={}, state_dir=pipeline.state_dir, source_url=source, warehouse_url=warehouse,
            cache_path=pipeline.cache, hmac_key=bench_hmac_key(),
        )  # fmt: skip
        with SyncEngine.from_settings(settings_) as engine:
            engine.setup()  # the tables the markers are watched in
        return TailData(pipeline, load_catalog("icoms"), source_db, {"skipped": True})
    measured = run_worker(
        "billing-sync-snapshot",
        {"state_dir": str(pipeline.state_dir), "source": source, "warehouse": warehouse,
         "cache": str(pipeline.cache), "capture": settings.get("capture", {})},
        timeout=3600,
    )  # fmt: skip
    if not measured.ok:
        raise RuntimeError(f"the first load of {name} failed: {measured.error_tail()}")
    result = measured.last_json()
    first_load = {
        "source_rows": sum(seeded.values()) + 4,
        "seeded": seeded,
        "seconds": result.get("seconds"),
        "rows": result.get("rows"),
        "rows_per_second": (result["rows"] / result["seconds"]) if result.get("seconds") else None,
        "process_seconds": measured.wall_seconds,
        "peak_rss_mb": mb(measured.peak_rss),
    }
    return TailData(pipeline, load_catalog("icoms"), source_db, first_load)


def _warehouse_now(url: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def backlog(data: TailData) -> dict[str, Any]:
    """Source rows past each table's watermark, and seconds behind, right now."""
    with psycopg.connect(data.pipeline.warehouse, autocommit=True) as conn:
        marks = conn.execute(
            "SELECT source_table, cursor_ts, caught_up_to FROM billing_sync.watermark"
        ).fetchall()
    if data.engine != "postgresql":
        now, rows = mariadb_source.rows_past(data.pipeline.source, data.source_database, marks)
    else:
        now, rows = _rows_past(data.pipeline.source, marks)
    behind = {table: (now - caught_up_to).total_seconds() if caught_up_to else None
              for table, cursor_ts, caught_up_to in marks if cursor_ts is not None}  # fmt: skip
    known = [value for value in behind.values() if value is not None]
    return {
        "rows": sum(rows.values()),
        "rows_per_table": rows,
        "seconds_behind_max": max(known) if known else None,
        "seconds_behind": behind,
    }


def _rows_past(source: str, marks: list[tuple[str, Any, Any]]) -> tuple[Any, dict[str, int]]:
    """The source's clock in ICOMS local time (the watermarks' zone), and the rows past
    each table's watermark."""
    rows: dict[str, int] = {}
    with psycopg.connect(source, autocommit=True) as conn:
        now_row = conn.execute(
            f"SELECT (now() AT TIME ZONE '{ICOMS_TIMEZONE}')::timestamp"
        ).fetchone()
        assert now_row is not None
        for table, cursor_ts, _ in marks:
            if cursor_ts is None:
                continue
            count = conn.execute(
                sql.SQL('SELECT count(*) FROM {} WHERE ("CHG_DATE", "CHG_TIME") > (%s, %s)').format(
                    sql.Identifier("icoms", table)
                ),
                encode_cyymmdd_hhmmss(cursor_ts),
            ).fetchone()
            rows[table] = int(count[0]) if count else 0
    return now_row[0], rows


def batch_stats(url: str, since: Any, until: Any) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(rows_read), 0), count(DISTINCT run_id)"
            " FROM billing_sync.batch_log WHERE committed_at >= %s AND committed_at < %s"
            " AND kind <> 'read_ahead'",  # hot rows read again: not captured changes
            (since, until),
        ).fetchone()
        per_run = conn.execute(
            "SELECT count(*) FROM billing_sync.batch_log WHERE committed_at >= %s"
            " AND committed_at < %s AND run_id IS NOT NULL GROUP BY run_id",
            (since, until),
        ).fetchall()
    assert row is not None
    return {
        "batches": int(row[0]),
        "rows": int(row[1]),
        "runs": int(row[2]),
        "median_batches_per_run": statistics.median(r[0] for r in per_run) if per_run else None,
    }


def _freshness_figures(values: list[float]) -> dict[str, Any]:
    finite = [v for v in values if v != float("inf")]
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": statistics.fmean(finite) if finite else None,
        "markers": len(values),
        "never_seen": len(values) - len(finite),
    }


def measure_window(
    ctx: BenchContext,
    data: TailData,
    driver: Driver,
    markers: Markers,
    *,
    rate: float,
    seconds: float,
    settle: float,
    label: str,
    warm_up_timeout: float = WARM_UP_TIMEOUT,
) -> tuple[list[Row], dict[str, Any]]:
    """One window at ``rate`` with ``driver`` already running; rows per tier and place."""
    pipeline = data.pipeline
    workload: Workload | mariadb_source.Workload = (
        Workload(pipeline.source, rate=rate)
        if data.engine == "postgresql"
        else mariadb_source.Workload(pipeline.source, schema=data.source_database, rate=rate)
    )
    workload.start()
    try:
        warm_from = time.time()
        warm = _warm_up(driver, markers, since=warm_from, timeout=warm_up_timeout)
        progress(f"warm after {time.time() - warm_from:.0f} s; measuring {seconds:.0f} s at "
                 f"{rate:,.0f} rows/s")  # fmt: skip
        cpu = TreeCpu(driver.pids())
        cpu.start()
        # pg_stat_statements: PostgreSQL sources only (the MariaDB leg leaves it empty)
        on_pg = data.engine == "postgresql"
        statements_before = on_pg and source_statements(ctx.server.url, data.source_database)
        breakdown_before = (source_statement_breakdown(ctx.server.url, data.source_database)
                            if on_pg else {})  # fmt: skip
        changed_before = sum(workload.counts().values())
        wall_start, db_start = time.time(), _warehouse_now(pipeline.warehouse)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not driver.alive():
                raise RuntimeError(f"the pipeline stopped during the window:\n{_log(driver)}")
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        wall_end, db_end = time.time(), _warehouse_now(pipeline.warehouse)
        cpu_seconds = cpu.since_start()
        statements_after = on_pg and source_statements(ctx.server.url, data.source_database)
        breakdown_after = (source_statement_breakdown(ctx.server.url, data.source_database)
                           if on_pg else {})  # fmt: skip
        changed = sum(workload.counts().values()) - changed_before
        at_end = backlog(data)
    finally:
        workload.stop()
    settle_deadline = time.monotonic() + settle
    while time.monotonic() < settle_deadline and not markers.all_seen(
        since=wall_start, until=wall_end, places=PLACES
    ):
        time.sleep(0.5)
    settled = settle - (settle_deadline - time.monotonic())
    progress(f"window done; markers settled in {settled:.0f} s")
    window = wall_end - wall_start
    batches = batch_stats(pipeline.warehouse, db_start, db_end)
    captured = batches["rows"]
    common: dict[str, Any] = {
        "engine": data.engine,
        "rate": rate,
        "shape": label,
        "window_seconds": round(window, 1),
        "changed_per_second": changed / window,
        "captured_per_second": captured / window,
        "cpu_seconds": cpu_seconds,
        "cpu_per_1000": cpu_seconds / captured * 1000 if captured else None,
        "backlog_rows": at_end["rows"],
        "seconds_behind_at_end": at_end["seconds_behind_max"],
        "batches": batches["batches"],
        "runs": batches["runs"],
        "warm_up_seconds": round(wall_start - warm_from, 1),
        "warmed_up": warm,
    }
    if statements_before and statements_after:
        queries = statements_after.calls - statements_before.calls
        common.update(
            source_queries_per_second=queries / window,
            rows_read_per_captured=(statements_after.rows - statements_before.rows) / captured
            if captured
            else None,
            blocks_per_captured=(statements_after.blocks - statements_before.blocks) / captured
            if captured
            else None,
        )
    rows: list[Row] = []
    per_table: dict[str, Any] = {}
    for tier in TIERS:
        for place in PLACES:
            values = [
                value
                for log in markers.logs.values()
                if log.table.tier == tier
                for value in log.freshness(place, since=wall_start, until=wall_end)
            ]
            rows.append({**common, "tier": tier, "place": place, **_freshness_figures(values)})
    for name, log in markers.logs.items():
        per_table[name] = {
            place: _freshness_figures(log.freshness(place, since=wall_start, until=wall_end))
            for place in PLACES
        }
    details = {
        "backlog": at_end,
        "batches": batches,
        "per_table": per_table,
        "source_reads": breakdown_delta(breakdown_before, breakdown_after),
        "cache_polls": markers.cache_polls,
        "cache_polls_refused": markers.cache_refused,
        "marker_errors": list(markers.errors),
    }
    return rows, details


def progress(message: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {message}", flush=True)


def _log(driver: Driver) -> str:
    tail = getattr(driver, "log_tail", None)
    return tail() if callable(tail) else ""


def _warm_up(driver: Driver, markers: Markers, *, since: float, timeout: float) -> bool:
    """Until markers committed after ``since`` show in both places for both tiers.

    False when that did not happen within ``timeout`` (a shape too slow to warm up): the
    window is measured all the same, its markers count as never seen if they never show.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not driver.alive():
            raise RuntimeError(f"the pipeline stopped while warming up:\n{_log(driver)}")
        if all(markers.seen_after(since, place, set(TIERS)) for place in PLACES):
            return True
        time.sleep(0.5)
    progress(f"no marker showed in both places within {timeout:.0f} s; measuring anyway")
    return False


def tail_run(
    ctx: BenchContext,
    data: TailData,
    driver: Driver,
    *,
    rates: tuple[float, ...],
    seconds: float,
    label: str,
    warm_up_timeout: float = WARM_UP_TIMEOUT,
) -> tuple[list[Row], dict[str, Any]]:
    """Start ``driver``, measure one window per rate, stop it."""
    markers = Markers(
        source_url=data.pipeline.source,
        warehouse_url=data.pipeline.warehouse,
        cache_path=data.pipeline.cache,
        catalog=data.catalog,
        interval=ctx.options.marker_interval,
        writer=mariadb_source.write_markers if data.engine == "mariadb" else None,
    )
    rows: list[Row] = []
    details: dict[str, Any] = {"windows": []}
    markers.start()
    started = time.time()
    driver.start()
    progress(f"{driver.name} started; warming up")
    try:
        for rate in rates:
            window_rows, window_details = measure_window(
                ctx, data, driver, markers, rate=rate, seconds=seconds,
                settle=max(15.0, min(60.0, seconds)), label=label, warm_up_timeout=warm_up_timeout,
            )  # fmt: skip
            rows += window_rows
            details["windows"].append({"rate": rate, **window_details})
    finally:
        markers.stop()
        driver.stop()
    stats = getattr(driver, "run_stats", None)
    if callable(stats):
        details["dagster_runs"] = stats(since=started)
    return rows, details


def _sla_notes(report: Report, rows: list[Row]) -> None:
    for row in rows:
        if row["tier"] != "priority" or row["place"] != "warehouse":
            continue
        p99 = row.get("p99")
        verdict = "meets" if p99 is not None and p99 < 10 else "misses"
        report.notes.append(
            f"{row['rate']:,.0f} rows/s target ({row['changed_per_second']:,.0f} achieved by the "
            f"workload): priority p99 {p99 if p99 is not None else float('nan'):.2f} s in the "
            f"warehouse {verdict} the 10 s promise; backlog at the end "
            f"{row['backlog_rows']:,} rows, {row.get('seconds_behind_at_end') or 0:.1f} s behind."
        )


def run_tail(ctx: BenchContext) -> list[Report]:
    """The ``tail`` report, then the ``profile`` of one micro-batch under the same load."""
    options = ctx.options
    settings = default_settings()
    data = prepare_data(
        ctx, "tail", accounts=options.tail_accounts, settings=settings,
        load_first=options.tail_first_load,
    )  # fmt: skip
    work = ctx.bench_dir / "tail"
    driver = DagsterDriver(data.pipeline, work)
    rows, details = tail_run(ctx, data, driver, rates=options.rates,
                             seconds=options.tail_seconds, label="defaults")  # fmt: skip
    details = {**details, "first_load": data.first_load, "settings": settings}
    if "mariadb" in options.source_engines:
        # The same scenario with the biller on MariaDB, after the PostgreSQL leg (one
        # pipeline at a time on 2 cores), its rows beside the PostgreSQL rows.
        maria = prepare_mariadb_data(ctx, "tail", accounts=options.tail_accounts,
                                     settings=settings)  # fmt: skip
        maria_driver = DagsterDriver(maria.pipeline, ctx.bench_dir / "tail-mariadb")
        maria_rows, maria_details = tail_run(
            ctx, maria, maria_driver, rates=options.rates, seconds=options.tail_seconds,
            label="defaults",
        )  # fmt: skip
        rows = [*rows, *maria_rows]
        details["mariadb"] = maria_details
    report = Report(
        "tail",
        f"Tail through the Dagster daemon and sensors ({options.tail_accounts:,} accounts, "
        f"{options.tail_seconds:.0f} s window per rate, engine defaults; source"
        f" {' and '.join(options.source_engines)})",
        TAIL_COLUMNS,
        rows,
        details=details,
    )
    _sla_notes(report, rows)
    report.notes.append(
        "Freshness: commit of a marker row in the source to the first poll that sees it "
        "(warehouse polled every 0.1 s by primary key; cache opened read-only every 0.25 s). "
        "CPU: Dagster daemon, code server and run workers; PostgreSQL not included."
    )
    profile = run_profile(ctx, data, rate=options.rates[0])
    return [report, profile]


def run_profile(ctx: BenchContext, data: TailData, *, rate: float) -> Report:
    """Engine loops with stage timers under the workload: where a micro-batch's time goes."""
    work = ctx.bench_dir / "tail"
    driver = EngineDriver(data.pipeline, work, tiers=TIERS, profile=True)
    workload = Workload(data.pipeline.source, rate=rate)
    driver.start()
    workload.start()
    try:
        deadline = time.monotonic() + 120
        while not driver.ready() and time.monotonic() < deadline and driver.alive():
            time.sleep(0.5)
        time.sleep(ctx.options.profile_seconds)
    finally:
        workload.stop()
        driver.stop()
    rows: list[Row] = []
    for tier in TIERS:
        summary = driver.results.get(tier, {}).get("profile", {})
        stages = summary.get("stages", {})
        p99 = summary.get("p99_stages", {})
        total = summary.get("median_total_seconds") or 0.0
        for stage, seconds in stages.items():
            waits = stage.startswith("wait: ")
            rows.append({
                "tier": tier, "stage": stage, "seconds": seconds, "p99": p99.get(stage),
                "share": seconds / total if total and not waits else None,
            })  # fmt: skip
        rows.append({
            "tier": tier, "stage": "micro-batch (median)", "seconds": total,
            "p99": summary.get("p99_total_seconds"), "share": 1.0 if total else None,
            "rows": summary.get("median_rows"), "batches": summary.get("batches"),
        })  # fmt: skip
    report = Report(
        "profile",
        f"Profile of one micro-batch (engine loop per tier, {rate:,.0f} rows/s workload; "
        "exclusive seconds per stage at p50 and p99 over the batches that read rows; "
        "wait: rows are what a change waits for before a batch reads it)",
        [
            Column("tier", "tier", align="<"),
            Column("stage", "stage", align="<"),
            Column("seconds", "p50 s", "{:.4f}"),
            Column("p99", "p99 s", "{:.4f}"),
            Column("share", "share of p50", "{:.0%}"),
            Column("rows", "rows/batch", "{:,.0f}"),
            Column("batches", "batches", "{:,}"),
        ],
        rows,
        details={"workers": driver.results},
    )
    return report


def run_shapes(ctx: BenchContext) -> Report:
    """One run per micro-batch against long-lived runs, same data and rate."""
    options = ctx.options
    rate = options.rates[0]
    shapes: list[tuple[str, int | None]] = [("batches_per_run 1 (a run per micro-batch)", 1)]
    tail = ctx.results.get("tail")
    if tail is None:
        shapes.append(("batches_per_run 100000 (one long-lived run)", 100_000))
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for label, per_run in shapes:
        settings = default_settings(batches_per_run=per_run)
        data = prepare_data(ctx, "shapes", accounts=options.tail_accounts, settings=settings)
        driver = DagsterDriver(data.pipeline, ctx.bench_dir / "shapes")
        # A run per micro-batch may never catch up: do not wait long for it to warm up.
        shape_rows, shape_details = tail_run(
            ctx, data, driver, rates=(rate,), seconds=options.shapes_seconds, label=label,
            warm_up_timeout=60.0 if per_run == 1 else WARM_UP_TIMEOUT,
        )  # fmt: skip
        runs = shape_details.get("dagster_runs", {})
        for row in shape_rows:
            row.update(
                median_launch_seconds=runs.get("median_launch_seconds"),
                median_run_seconds=runs.get("median_run_seconds"),
            )
        rows += shape_rows
        details[label] = shape_details
    if tail is not None:
        first = [r for r in tail.rows if r["rate"] == rate]
        runs = tail.details.get("dagster_runs", {})
        for row in first:
            shape = f"batches_per_run {TierSettings.model_fields['batches_per_run'].default}"
            rows.append({**row, "shape": f"{shape} (default; from the tail run)",
                         "median_launch_seconds": runs.get("median_launch_seconds"),
                         "median_run_seconds": runs.get("median_run_seconds")})  # fmt: skip
    report = Report(
        "shapes",
        f"Run shapes at {rate:,.0f} rows/s: a Dagster run per micro-batch against long-lived runs",
        [
            Column("shape", "shape", align="<"),
            Column("tier", "tier", align="<"),
            Column("place", "visible in", align="<"),
            *FRESHNESS_COLUMNS,
            Column("runs", "runs", "{:,}"),
            Column("batches", "batches", "{:,}"),
            Column("median_launch_seconds", "run launch s", "{:.2f}"),
            Column("cpu_per_1000", "CPU s/1k rows", "{:.3f}"),
            Column("backlog_rows", "backlog rows", "{:,}"),
        ],
        [r for r in rows if r["place"] == "warehouse"] + [r for r in rows if r["place"] == "cache"],
        details=details,
    )
    report.notes.append(
        "run launch s: median from a run's creation by the sensor to its start (queued run "
        "coordinator, run worker process start). runs and batches: in the window."
    )
    return report


def engine_tail(
    ctx: BenchContext, data: TailData, workdir: Path, *, rate: float, seconds: float, label: str
) -> tuple[list[Row], dict[str, Any]]:
    """A tail window driven by engine loops (one process per tier), without Dagster."""
    driver = EngineDriver(data.pipeline, workdir, tiers=TIERS)
    return tail_run(ctx, data, driver, rates=(rate,), seconds=seconds, label=label)
