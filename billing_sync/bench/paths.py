"""Scenario ``paths``: the fast paths to choose from, measured on the snapshot table.

- extraction into Arrow: a psycopg cursor (the engine today), psycopg binary ``COPY``,
  ConnectorX, ADBC's PostgreSQL driver; each checked for '' vs NULL and exact decimals;
- validation of one micro-batch: the Great Expectations suite (the engine today) against
  the same expectations as Polars expressions (:func:`polars_checks`, a prototype).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from billing_sync.bench import data
from billing_sync.bench.context import BenchContext
from billing_sync.bench.measure import run_worker
from billing_sync.bench.report import Column, Report, Row, mb

SUITES = Path(__file__).resolve().parent.parent / "validate" / "suites"
METHODS = (
    ("psycopg", "psycopg cursor, rows to pa.array (engine today)"),
    ("psycopg-copy", "psycopg COPY binary rows to pa.array"),
    ("connectorx", "ConnectorX Arrow stream, cast to the catalog types"),
    ("adbc", "ADBC PostgreSQL driver"),
)


def _bound(value: Any) -> Any:
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    return value


def polars_checks(entity: str) -> list[pl.Expr]:
    """The entity's suite as Polars expressions, one boolean "failed" per expectation."""
    suite = yaml.safe_load((SUITES / f"{entity}.yaml").read_text())
    checks: list[pl.Expr] = []
    for index, spec in enumerate(suite["expectations"]):
        column = pl.col(spec["column"])
        kind = spec["type"]
        if kind == "expect_column_values_to_not_be_null":
            failed = column.is_null().any()
        elif kind == "expect_column_values_to_be_unique":
            failed = column.is_duplicated().any()
        elif kind == "expect_column_values_to_be_between":
            low, high = _bound(spec.get("min_value")), _bound(spec.get("max_value"))
            value = column.cast(pl.Float64) if not isinstance(low, dt.date) else column
            failed = ~value.is_between(low, high).fill_null(True).all()
        elif kind == "expect_column_values_to_be_in_set":
            failed = ~column.is_in(spec["value_set"]).fill_null(True).all()
        elif kind == "expect_column_values_to_match_regex":
            failed = ~column.str.contains(spec["regex"]).fill_null(True).all()
        elif kind == "expect_column_values_to_not_match_regex":
            failed = column.str.contains(spec["regex"]).fill_null(False).any()
        else:
            continue
        checks.append(failed.alias(f"{index}:{kind}:{spec['column']}"))
    return checks


def validate_paths(args: dict[str, Any]) -> dict[str, Any]:
    """Worker task: GX against Polars on ``rows`` rows of the payment entity."""
    from datetime import UTC, datetime

    from billing_sync.capture.query import BoundQuery
    from billing_sync.config import load_catalog
    from billing_sync.source.session import SourceSession
    from billing_sync.transform.normalize import normalize, source_schema
    from billing_sync.validate.runner import Validator

    mapping = load_catalog("icoms").by_table[data.TABLE]
    names = ", ".join(f'"{c.source}"' for c in mapping.columns)
    query = BoundQuery(
        f'SELECT {names}, COALESCE("CHG_TS", "CRT_TS") AS _cursor_ts'
        f' FROM "{data.SCHEMA}"."{data.TABLE}" LIMIT {int(args["rows"])}',
        {},
    )
    with SourceSession(args["source"]) as session:
        raw = session.read_arrow(query, source_schema(mapping))
    frame = normalize(raw, mapping, system="icoms", synced_at=datetime.now(UTC))
    validator = Validator()
    validator.warm_up([mapping.entity])
    checks = polars_checks(mapping.entity)
    gx, fast = [], []
    for _ in range(int(args.get("repeat", 5))):
        started = time.perf_counter()
        validator.validate(mapping.entity, frame)
        gx.append(time.perf_counter() - started)
        started = time.perf_counter()
        frame.select(checks)
        fast.append(time.perf_counter() - started)
    return {
        "rows": frame.height,
        "expectations": len(checks),
        "gx_seconds": statistics.median(gx),
        "polars_seconds": statistics.median(fast),
    }


def _short(arrow_type: str) -> str:
    """``extension<arrow.opaque[...type_name=numeric...]>`` -> ``opaque numeric``."""
    return "opaque numeric (a string)" if "opaque" in arrow_type else arrow_type


def run_paths(ctx: BenchContext) -> Report:
    source = ctx.server.database("bench_source", fresh=False)
    expected = data.ensure_snapshot_table(source, ctx.options.snapshot_rows)
    netloc = data.socket_netloc_url(source)
    rows: list[Row] = []
    for method, label in METHODS:
        measured = run_worker(
            "extract",
            {"method": method, "source": source, "cx_url": netloc, "adbc_url": netloc,
             "schema": data.SCHEMA, "table": data.TABLE},
            timeout=3600,
        )  # fmt: skip
        result = measured.last_json()
        row: Row = {"path": "extract", "method": label}
        if not measured.ok:
            row["output"] = f"failed: {measured.error_tail(200)}"
        else:
            exact = (
                result["empty_strings"] == expected.empty_strings
                and result["nulls"] == expected.nulls
            )
            row.update(
                seconds=result["seconds"],
                rows_per_second=result["rows"] / result["seconds"],
                peak_rss_mb=mb(measured.peak_rss),
                output=("'' and NULL kept" if exact else "'' / NULL WRONG")
                + (
                    ""
                    if result["schema_matches"]
                    else f"; AMOUNT as {_short(result['amount_type'])}"
                ),
            )
        rows.append(row)
    batch = min(20_000, expected.rows)
    measured = run_worker("validate-paths", {"source": source, "rows": batch}, timeout=600)
    result = measured.last_json()
    if measured.ok:
        rows.append({"path": f"validate {batch:,} rows", "method": "Great Expectations suite "
                     "(engine today)", "seconds": result["gx_seconds"],
                     "rows_per_second": batch / result["gx_seconds"]})  # fmt: skip
        rows.append({"path": f"validate {batch:,} rows", "method": f"the same "
                     f"{result['expectations']} expectations as Polars expressions",
                     "seconds": result["polars_seconds"],
                     "rows_per_second": batch / result["polars_seconds"]})  # fmt: skip
    else:
        rows.append({"path": "validate", "method": "-", "output": measured.error_tail(200)})
    return Report(
        "paths",
        f"Fast paths: extraction of {expected.rows:,} rows into Arrow, validation of a batch",
        [
            Column("path", "path", align="<"),
            Column("method", "method", align="<"),
            Column("seconds", "seconds", "{:.3f}"),
            Column("rows_per_second", "rows/s", "{:,.0f}"),
            Column("peak_rss_mb", "peak RSS MB", "{:.0f}"),
            Column("output", "output", align="<"),
        ],
        rows,
    )
