"""Scenario ``snapshot``: one table from the source to PostgreSQL and DuckDB, all contenders.

Every contender reads the same ``icoms.PAYMENT`` table (see :mod:`.data`) on the same
server and writes a fresh database of its own on that server (``bench_wh_<contender>``)
and a DuckDB file of its own, in a process of its own. Afterwards its output is checked:
row count, empty strings and NULLs kept apart, and whether the table has a primary key.

With ``--source-engine mariadb`` the same contenders then read the same rows on MariaDB
(:mod:`.snapshot_sources`) into the same targets (``bench_wh_<contender>_mariadb``); the
report's ``source`` column tells the legs apart. On MariaDB there is no COPY floor, and
dlt runs both its backends (connectorx and pyarrow) even with ``--quick``.
"""

from __future__ import annotations

import importlib.util
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from billing_sync.bench import data
from billing_sync.bench.context import BenchContext
from billing_sync.bench.measure import Measured, run_measured, run_worker
from billing_sync.bench.peers import (
    DLT_CONFIGS,
    DLT_MYSQL_CONFIGS,
    SLING_CONFIGS,
    PeerConfig,
    dlt_destination_url,
    dlt_unavailable,
    sling_binary,
    sling_environment,
    sling_unavailable,
)
from billing_sync.bench.report import Column, Report, Row, mb
from billing_sync.bench.snapshot_sources import SnapshotSource, mariadb_source, postgresql_source
from billing_sync.bench.snapshot_summary import summarize
from billing_sync.postgres import with_database

COLUMNS = [
    Column("source", "source", align="<"),
    Column("contender", "contender", align="<"),
    Column("target", "target", align="<"),
    Column("configuration", "configuration", align="<"),
    Column("seconds", "seconds", "{:.2f}"),
    Column("rows_per_second", "rows/s", "{:,.0f}"),
    Column("process_seconds", "process s", "{:.1f}"),
    Column("cpu_seconds", "CPU s", "{:.1f}"),
    Column("server_cpu_seconds", "server CPU s", "{:.1f}"),
    Column("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    Column("output", "output check", align="<"),
]


@dataclass(frozen=True)
class Target:
    """Where a contender's rows land, and how to read them back."""

    kind: str  # "postgres" or "duckdb"
    location: str  # URL or file
    table: str  # qualified, quoted as needed
    column: str  # the CHG_USER column there


def check_output(target: Target, expected: data.SnapshotTable) -> dict[str, Any]:
    """Rows, empty strings and NULLs of CHG_USER, and a primary key, in the target."""
    counts = (
        f"SELECT count(*), count(*) FILTER (WHERE {target.column} = ''),"
        f" count(*) FILTER (WHERE {target.column} IS NULL) FROM {target.table}"
    )
    try:
        if target.kind == "postgres":
            with psycopg.connect(target.location, autocommit=True) as conn:
                row = conn.execute(counts).fetchone()
                key = conn.execute(
                    "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
                    (target.table,),
                ).fetchone()
        else:
            with duckdb.connect(target.location, read_only=True) as con:
                row = con.execute(counts).fetchone()
                schema, name = (part.strip('"') for part in target.table.split("."))
                key = con.execute(
                    "SELECT count(*) FROM duckdb_constraints() WHERE schema_name = ?"
                    " AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
                    [schema, name],
                ).fetchone()
    except (psycopg.Error, duckdb.Error) as error:
        return {"ok": False, "summary": f"cannot read output: {str(error).strip()[:200]}"}
    assert row is not None
    rows, empty, nulls = (int(value) for value in row)
    problems = []
    if rows != expected.rows:
        problems.append(f"{rows:,} rows, expected {expected.rows:,}")
    if empty != expected.empty_strings or nulls != expected.nulls:
        problems.append(
            f"'' {empty:,} / NULL {nulls:,}, expected {expected.empty_strings:,} / "
            f"{expected.nulls:,}"
        )
    has_key = bool(key and key[0])
    summary = "ok" if not problems else "WRONG: " + "; ".join(problems)
    summary += "" if has_key else " (no primary key)"
    return {
        "ok": not problems,
        "summary": summary,
        "rows": rows,
        "empty_strings": empty,
        "nulls": nulls,
        "primary_key": has_key,
    }


def _row(source: str, contender: str, target: str, configuration: str) -> Row:
    return {"source": source, "contender": contender, "target": target,
            "configuration": configuration}  # fmt: skip


def _fill(row: Row, runs: list[tuple[Measured, dict[str, Any]]], rows: int) -> None:
    """Figures of the median run (by inner seconds) of ``runs``."""
    seconds = [result.get("seconds", measured.wall_seconds) for measured, result in runs]
    median = statistics.median(seconds)
    measured, result = min(runs, key=lambda run: abs(
        run[1].get("seconds", run[0].wall_seconds) - median))  # fmt: skip
    row.update(
        seconds=median,
        seconds_each=[round(s, 3) for s in seconds],
        rows_per_second=rows / median if median else None,
        process_seconds=measured.wall_seconds,
        cpu_seconds=measured.cpu_seconds,
        server_cpu_seconds=result.get("server_cpu_seconds"),
        peak_rss_mb=mb(measured.peak_rss),
        worker=result,
    )


def run_snapshot(ctx: BenchContext) -> Report:
    options = ctx.options
    work = ctx.workdir("snapshot")
    postgres = ctx.server.database("bench_source", fresh=False)
    expected = data.ensure_snapshot_table(postgres, options.snapshot_rows)
    sources = [postgresql_source(postgres)]
    if "mariadb" in options.source_engines:
        sources.append(mariadb_source(options.mariadb_url, postgres, work))
    report = Report(
        "snapshot",
        f"Snapshot: {expected.rows:,} rows of icoms.PAYMENT (11 columns, primary key) "
        f"from {' and '.join(source.label for source in sources)} to PostgreSQL and DuckDB",
        COLUMNS,
    )
    for source in sources:
        _run_source(ctx, report, source, expected, work)
    summarize(report, expected.rows)
    return report


def _run_source(ctx: BenchContext, report: Report, source: SnapshotSource,
                expected: data.SnapshotTable, work: Path) -> None:  # fmt: skip
    """Every contender reading ``source``, in turn; their rows go to ``report``."""
    options = ctx.options
    rows = expected.rows
    repeat = max(1, options.repeat)
    suffix = source.suffix

    def server_cpu() -> tuple[float | None, float | None]:
        return ctx.server.cpu_seconds(), source.server_cpu_seconds()

    def contender(
        name: str,
        target: str,
        configuration: str,
        outputs: list[Target],
        prepare: Callable[[], None],
        execute: Callable[[], tuple[Measured, dict[str, Any]]],
        unavailable: str | None = None,
    ) -> Row:
        row = _row(source.label, name, target, configuration)
        report.rows.append(row)
        if unavailable:
            row.update(output=f"unavailable: {unavailable}", status="unavailable")
            return row
        runs = []
        for _ in range(repeat):
            prepare()
            before = server_cpu()
            measured, result = execute()
            result = {**result, **_server_cpu_used(before, server_cpu())}
            if not measured.ok:
                row.update(output=f"failed: {measured.error_tail(300)}", status="failed",
                           error=measured.error_tail())  # fmt: skip
                return row
            runs.append((measured, result))
        _fill(row, runs, rows)
        checks = [check_output(output, expected) for output in outputs]
        row["checks"] = checks
        row["status"] = "ok" if all(c["ok"] for c in checks) else "wrong output"
        row["output"] = "; ".join(
            (f"{output.kind}: " if len(outputs) > 1 else "") + check["summary"]
            for output, check in zip(outputs, checks, strict=True)
        )
        return row

    # -- billing-sync: warehouse and cache in one pass ----------------------------------
    bs_wh = f"bench_wh_billing_sync{suffix}"
    bs_cache = work / f"billing-sync{suffix}.duckdb"
    bs_args = {
        "state_dir": str(work / f"billing-sync-state{suffix}"), "source": source.url,
        "warehouse": "", "cache": str(bs_cache), "catalog_dir": source.catalog_dir,
        "untimed": ["ACCOUNT"], "tables": [data.TABLE],
    }  # fmt: skip

    def bs_prepare() -> None:
        bs_args["warehouse"] = ctx.server.database(bs_wh)
        bs_cache.unlink(missing_ok=True)

    def bs_execute() -> tuple[Measured, dict[str, Any]]:
        measured = run_worker("billing-sync-snapshot", bs_args, timeout=3600)
        return measured, measured.last_json()

    contender(
        "billing-sync", "PostgreSQL + DuckDB", "engine defaults, one pass",
        [Target("postgres", _database_url(ctx, bs_wh), "billing.payment", "changed_by"),
         Target("duckdb", str(bs_cache), "billing.payment", "changed_by")],
        bs_prepare, bs_execute,
    )  # fmt: skip

    # -- the floors ---------------------------------------------------------------------
    if source.engine == "postgresql":
        floor_args = {"source": source.url, "warehouse": "", "schema": source.schema,
                      "table": data.TABLE}  # fmt: skip

        def floor_prepare() -> None:
            floor_args["warehouse"] = ctx.server.database("bench_wh_floor")

        contender(
            "floor: COPY binary", "PostgreSQL", "COPY TO STDOUT piped to COPY FROM STDIN",
            [Target("postgres", _database_url(ctx, "bench_wh_floor"), 'floor."PAYMENT"',
                    '"CHG_USER"')],
            floor_prepare, lambda: _worker("copy-floor", floor_args),
        )  # fmt: skip
    floor_duck = work / f"floor{suffix}.duckdb"
    contender(
        "floor: ConnectorX -> Arrow", "DuckDB", "streamed Arrow batches",
        [Target("duckdb", str(floor_duck), "main.payment", '"CHG_USER"')],
        lambda: None,
        lambda: _worker("arrow-duckdb-floor", {
            "cx_url": source.cx_url, "target": str(floor_duck), "schema": source.schema,
            "table": data.TABLE, "quote": source.quote}),
        unavailable=None if _has("connectorx") else "connectorx is not installed",
    )  # fmt: skip

    # -- dlt and Sling ------------------------------------------------------------------
    if options.peers:
        dlt_configs = DLT_CONFIGS if source.engine == "postgresql" else DLT_MYSQL_CONFIGS
        for config in dlt_configs:
            if options.quick and not config.quick:
                continue
            _run_dlt(ctx, contender, config, source, work)
        for config in SLING_CONFIGS:
            if options.quick and not config.quick:
                continue
            _run_sling(ctx, contender, config, source, work)


def _server_cpu_used(before: tuple[float | None, float | None],
                     after: tuple[float | None, float | None]) -> dict[str, float]:  # fmt: skip
    """The servers' CPU over a run: PostgreSQL's (the targets, and the source when it is
    PostgreSQL), and a MariaDB source's; ``server_cpu_seconds`` is their sum."""
    used = [None if b is None or a is None else a - b for b, a in zip(before, after, strict=True)]
    postgres, source = used
    if postgres is None:
        return {}
    if source is None:
        return {"server_cpu_seconds": postgres}
    return {"server_cpu_seconds": postgres + source, "source_server_cpu_seconds": source}


def _has(module: str) -> bool:

    return importlib.util.find_spec(module) is not None


def _worker(task: str, args: dict[str, Any]) -> tuple[Measured, dict[str, Any]]:
    measured = run_worker(task, args, timeout=3600)
    return measured, measured.last_json()


def _database_url(ctx: BenchContext, database: str) -> str:

    return with_database(ctx.server.url, database)


def _run_dlt(ctx: BenchContext, contender: Any, config: PeerConfig, source: SnapshotSource,
             work: Path) -> None:  # fmt: skip
    database = f"bench_wh_dlt{source.suffix}"
    duck = work / f"dlt-target{source.suffix}.duckdb"
    args: dict[str, Any] = {
        "source": source.url, "cx_url": source.cx_url, "schema": source.schema,
        "table": data.TABLE, "destination": config.target, "dataset": "dlt_bench",
        "pipelines_dir": str(work / "dlt"),
        "pipeline": f"bench_{config.options['backend']}_{config.target}{source.suffix}",
        "backend": config.options["backend"], "file_format": config.options.get("file_format"),
    }  # fmt: skip
    if config.target == "postgres":
        output = Target("postgres", _database_url(ctx, database), "dlt_bench.payment", "chg_user")
    else:
        output = Target("duckdb", str(duck), "dlt_bench.payment", "chg_user")

    def prepare() -> None:
        if config.target == "postgres":
            args["target"] = dlt_destination_url(ctx.server.database(database))
        else:
            duck.unlink(missing_ok=True)
            args["target"] = str(duck)

    drivers = ("pymysql",) if source.engine == "mariadb" else ()
    contender("dlt", _target_name(config.target), config.name, [output], prepare,
              lambda: _worker("dlt", args), unavailable=dlt_unavailable(*drivers))  # fmt: skip


def _run_sling(ctx: BenchContext, contender: Any, config: PeerConfig, source: SnapshotSource,
               work: Path) -> None:  # fmt: skip
    database = f"bench_wh_sling{source.suffix}"
    duck = work / f"sling-target{source.suffix}.duckdb"
    binary = sling_binary()
    if config.target == "postgres":
        output = Target("postgres", _database_url(ctx, database), "sling.payment", "chg_user")
        target_object = "sling.payment"
    else:
        output = Target("duckdb", str(duck), "main.payment", "chg_user")
        target_object = "main.payment"
    env: dict[str, str] = {}

    def prepare() -> None:
        nonlocal env
        if config.target == "postgres":
            target = ctx.server.database(database)
            env = sling_environment(work / "sling-home", source=source.url, target=target,
                                    duckdb_path=None, copy_method=None)  # fmt: skip
        else:
            duck.unlink(missing_ok=True)
            env = sling_environment(
                work / "sling-home", source=source.url, target="", duckdb_path=duck,
                copy_method=config.options["copy_method"],
            )  # fmt: skip

    def execute() -> tuple[Measured, dict[str, Any]]:
        command = [
            str(binary), "run", "--src-conn", "SRC",
            "--src-stream", f"{source.schema}.{data.TABLE}", "--tgt-conn", "TGT",
            "--tgt-object", target_object, "--mode", "full-refresh",
        ]  # fmt: skip
        measured = run_measured(command, env=env, timeout=3600)
        return measured, {}

    contender("Sling", _target_name(config.target), config.name, [output], prepare, execute,
              unavailable=sling_unavailable(config.target))  # fmt: skip


def _target_name(target: str) -> str:
    return {"postgres": "PostgreSQL", "duckdb": "DuckDB"}[target]
