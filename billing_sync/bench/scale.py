"""Scenario ``scale``: first-load rows/s and tail freshness at 1x, 4x and 16x the data.

Each point seeds its own biller with ``scale_base_accounts x factor`` accounts, times the
engine's first load of all four tables (in a worker process: rows/s and peak RSS), then
runs a tail window at ``scale_rate`` with engine loops (one process per tier, no Dagster:
the Dagster overhead does not depend on table size and the ``tail`` scenario measures it).
The tail's cost should not grow with the tables; the first load's time grows linearly.
"""

from __future__ import annotations

from typing import Any

from billing_sync.bench.context import BenchContext
from billing_sync.bench.report import Column, Report, Row
from billing_sync.bench.tail import engine_tail, prepare_data


def _pick(rows: list[Row], tier: str, place: str, key: str) -> Any:
    for row in rows:
        if row["tier"] == tier and row["place"] == place:
            return row.get(key)
    return None


def run_scale(ctx: BenchContext) -> Report:
    options = ctx.options
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for factor in options.scale_factors:
        name = f"scale{factor}x"
        accounts = options.scale_base_accounts * factor
        data = prepare_data(ctx, name, accounts=accounts, settings={})
        tail_rows, tail_details = engine_tail(
            ctx, data, ctx.bench_dir / name, rate=options.scale_rate,
            seconds=options.scale_tail_seconds, label=f"{factor}x",
        )  # fmt: skip
        load = data.first_load
        first = tail_rows[0] if tail_rows else {}
        rows.append({
            "factor": f"{factor}x",
            "accounts": accounts,
            "source_rows": load["source_rows"],
            "load_seconds": load["seconds"],
            "load_rows_per_second": load["rows_per_second"],
            "load_peak_rss_mb": load["peak_rss_mb"],
            "priority_p50": _pick(tail_rows, "priority", "warehouse", "p50"),
            "priority_p99": _pick(tail_rows, "priority", "warehouse", "p99"),
            "standard_p99": _pick(tail_rows, "standard", "warehouse", "p99"),
            "cache_priority_p99": _pick(tail_rows, "priority", "cache", "p99"),
            "captured_per_second": first.get("captured_per_second"),
            "cpu_per_1000": first.get("cpu_per_1000"),
            "blocks_per_captured": first.get("blocks_per_captured"),
        })  # fmt: skip
        details[name] = {"first_load": load, "tail": tail_rows, "tail_details": tail_details}
    report = Report(
        "scale",
        f"Scale: first load and tail at {', '.join(f'{f}x' for f in options.scale_factors)} "
        f"the data ({options.scale_base_accounts:,} accounts at 1x; tail at "
        f"{options.scale_rate:,.0f} rows/s by engine loops, warehouse freshness)",
        [
            Column("factor", "data", align="<"),
            Column("source_rows", "source rows", "{:,}"),
            Column("load_seconds", "first load s", "{:.1f}"),
            Column("load_rows_per_second", "load rows/s", "{:,.0f}"),
            Column("load_peak_rss_mb", "load peak RSS MB", "{:.0f}"),
            Column("priority_p50", "priority p50 s", "{:.2f}"),
            Column("priority_p99", "priority p99 s", "{:.2f}"),
            Column("standard_p99", "standard p99 s", "{:.2f}"),
            Column("cache_priority_p99", "cache priority p99 s", "{:.2f}"),
            Column("cpu_per_1000", "CPU s/1k rows", "{:.3f}"),
            Column("blocks_per_captured", "src blocks/captured", "{:.1f}"),
        ],
        rows,
        details=details,
    )
    report.notes.append(
        "first load: the engine's primary-key snapshot of all four tables, validation and "
        "both targets included. src blocks/captured: buffer blocks the pipeline's source "
        "reads touched per captured row (pg_stat_statements)."
    )
    return report
