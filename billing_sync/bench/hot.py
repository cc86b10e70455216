"""Scenario ``hot``: per-row staleness of rows rewritten every 0.3 s, under the workload.

A few ICOMS ``ACCOUNT`` rows (priority tier) are rewritten every 0.3 s, faster than the
capture delay, while the normal change workload runs at ``hot_rate`` and engine loops
(one process per tier) sync. The warehouse copies of the hot rows are sampled every
0.1 s from outside (:mod:`billing_sync.bench.staleness`): the figure is how far a copy
lags the row's latest committed value, per row, not per batch. Without the read-ahead
(:mod:`billing_sync.engine.read_ahead`) such a row is not captured until its writes
pause; the test ``test_hot_rows`` shows it falling behind for as long as they go on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from billing_sync.bench.context import BenchContext
from billing_sync.bench.report import Column, Report, Row
from billing_sync.bench.staleness import ACCOUNT, HotWriter, Staleness, sample
from billing_sync.bench.tail import engine_tail, prepare_data, progress

HOT_ROWS = 5
LIVE_TIMEOUT = 180.0  # seconds for the engine loops to start and capture a first write


def _hot_keys(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT "SITE_ID", "ACCOUNT_NO" FROM {ACCOUNT} ORDER BY 2 DESC LIMIT %s',
            (HOT_ROWS,),
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _live(url: str, writer: HotWriter, timeout: float) -> float | None:
    """Seconds until every hot row's copy shows a write of the writer (None: never)."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE balance >= 1) FROM billing.billing_account"
                " WHERE (site_id, account_number) IN"
                " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([k[0].strip() for k in writer.keys], [k[1].strip() for k in writer.keys]),
            ).fetchone()
            if row is not None and row[0] == len(writer.keys):
                return time.monotonic() - started
            time.sleep(0.2)
    return None


def run_hot(ctx: BenchContext) -> Report:
    options = ctx.options
    seconds = options.hot_seconds
    data = prepare_data(ctx, "hot", accounts=options.hot_accounts, settings={})
    writer = HotWriter(data.pipeline.source, _hot_keys(data.pipeline.source), period=0.3)
    writer.reset()
    found: dict[str, Any] = {}

    def measure() -> None:
        found["live_after"] = _live(data.pipeline.warehouse, writer, LIVE_TIMEOUT)
        if found["live_after"] is not None:
            found["staleness"] = sample(data.pipeline.warehouse, writer, seconds=seconds)

    writer.start()
    sampler = threading.Thread(target=measure, name="hot-sampler", daemon=True)
    sampler.start()
    try:
        tail_rows, tail_details = engine_tail(
            ctx, data, ctx.bench_dir / "hot", rate=options.hot_rate, seconds=seconds,
            label="hot rows",
        )  # fmt: skip
        sampler.join(timeout=LIVE_TIMEOUT + seconds)
    finally:
        writer.stop()
    staleness: Staleness = found.get("staleness") or Staleness()
    progress(f"hot rows: worst staleness {staleness.worst:.2f} s over {len(staleness.samples)}")
    read_ahead = _read_ahead_figures(data.pipeline.warehouse)
    delay = 1.0  # the engine's default capture delay, which the bench keeps
    rows: list[Row] = [
        {
            "hot_rows": len(writer.keys),
            "period": writer.period,
            "rate": options.hot_rate,
            "samples": len(staleness.samples),
            "p50": staleness.percentile(0.50),
            "p99": staleness.percentile(0.99),
            "worst": staleness.worst,
            "bound": delay + 2.0,
            "status": "ok" if staleness.samples and staleness.worst <= delay + 2.0 else "over",
            **read_ahead,
        }
    ]
    report = Report(
        "hot",
        f"Hot rows: {len(writer.keys)} rows rewritten every {writer.period} s for {seconds:.0f} s"
        f" under {options.hot_rate:,.0f} changed rows/s; staleness of each row's warehouse"
        " copy against its latest committed value, sampled every 0.1 s",
        [
            Column("hot_rows", "hot rows", "{:,}"),
            Column("samples", "samples", "{:,}"),
            Column("p50", "p50 s", "{:.2f}"),
            Column("p99", "p99 s", "{:.2f}"),
            Column("worst", "worst s", "{:.2f}"),
            Column("bound", "bound (delay + 2) s", "{:.1f}"),
            Column("read_ahead_batches", "read-ahead batches", "{:,}"),
            Column("read_ahead_rows", "rows read ahead", "{:,}"),
            Column("status", "status", align="<"),
        ],
        rows,
        details={"tail": tail_rows, "tail_details": tail_details, **found_details(found)},
    )
    report.notes.append(
        "each write's instant is taken before its COMMIT, so staleness is never under-stated;"
        " the engine loops run the defaults (capture delay 1 s, read-ahead for the priority"
        " tier, at most 1,000 rows per batch)."
    )
    return report


def found_details(found: dict[str, Any]) -> dict[str, Any]:
    return {"live_after_seconds": found.get("live_after")}


def _read_ahead_figures(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(rows_read), 0) FROM billing_sync.batch_log"
            " WHERE kind = 'read_ahead'"
        ).fetchone()
    assert row is not None
    return {"read_ahead_batches": int(row[0]), "read_ahead_rows": int(row[1])}
