"""Scenario ``paths``: the fast paths to choose from, measured on the snapshot table.

- extraction into Arrow, in the snapshot's 50k-row key-ordered chunks: a psycopg cursor
  (the engine before), ``COPY`` as CSV parsed by pyarrow (the engine now), ConnectorX,
  ADBC's PostgreSQL driver; each checked for '' vs NULL and exact decimals;
- validation of one micro-batch: the Great Expectations suite (the tail's) against the
  same suite compiled to Polars (:mod:`billing_sync.validate.polars_suite`, snapshots').
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from typing import Any

from billing_sync.bench import bench_hmac_key, data
from billing_sync.bench.context import BenchContext
from billing_sync.bench.measure import run_worker
from billing_sync.bench.report import Column, Report, Row, mb
from billing_sync.capture.snapshot import build_snapshot_query
from billing_sync.config import load_catalog
from billing_sync.source.schema import source_schema
from billing_sync.source.session import SourceSession
from billing_sync.transform.normalize import normalize
from billing_sync.transform.protect import Protector
from billing_sync.validate.polars_suite import PolarsValidator
from billing_sync.validate.runner import Validator

METHODS = (
    ("cursor", "psycopg cursor, rows to pa.array (the engine before)"),
    ("copy-csv", "COPY ... (FORMAT csv) parsed by pyarrow (the engine now)"),
    ("connectorx", "ConnectorX Arrow result"),
    ("adbc", "ADBC PostgreSQL driver"),
)


def validate_paths(args: dict[str, Any]) -> dict[str, Any]:
    """Worker task: the payment suite on ``rows`` rows, by GX and compiled to Polars."""

    catalog = load_catalog("icoms")
    mapping = catalog.by_table[data.TABLE]
    protector = Protector.for_catalogs([catalog], hmac_key=bench_hmac_key())
    query = build_snapshot_query(mapping, schema=data.SCHEMA, after_key=None,
                                 limit=int(args["rows"]))  # fmt: skip
    with SourceSession(args["source"]) as session:
        raw = session.read_arrow(query, source_schema(mapping))
    frame = normalize(
        raw, mapping, system="icoms", synced_at=datetime.now(UTC), protector=protector
    )
    validator = Validator()
    validator.warm_up([mapping.entity])
    polars = PolarsValidator()
    gx, fast = [], []
    for _ in range(int(args.get("repeat", 5))):
        started = time.perf_counter()
        expected = validator.validate(mapping.entity, frame)
        gx.append(time.perf_counter() - started)
        started = time.perf_counter()
        found = polars.validate(mapping.entity, frame)
        fast.append(time.perf_counter() - started)
    return {
        "rows": frame.height,
        "expectations": found.expectations,
        "gx_seconds": statistics.median(gx),
        "polars_seconds": statistics.median(fast),
        "same_failures": [f.label for f in expected.failures] == [f.label for f in found.failures],
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
                     "(the tail)", "seconds": result["gx_seconds"],
                     "rows_per_second": batch / result["gx_seconds"]})  # fmt: skip
        rows.append({"path": f"validate {batch:,} rows", "method": f"the same "
                     f"{result['expectations']} expectations compiled to Polars (snapshots)",
                     "seconds": result["polars_seconds"],
                     "rows_per_second": batch / result["polars_seconds"],
                     "output": "same failures" if result.get("same_failures")
                     else "DIFFERENT failures"})  # fmt: skip
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
