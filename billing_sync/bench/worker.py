"""One contender or one engine loop in a fresh process: ``python -m billing_sync.bench.worker``.

``worker TASK JSON`` runs the task and prints one JSON line with its figures. Seconds
are measured inside the process, after imports and connections, around the work itself;
the parent measures the whole process (wall, CPU, peak RSS) on top.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Args = dict[str, Any]


def _settings(args: Args) -> Any:
    # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
    from billing_sync.bench import bench_hmac_key
    from billing_sync.config import load_settings

    return load_settings(
        env={},
        hmac_key=bench_hmac_key(),
        state_dir=Path(args["state_dir"]),
        source_url=args["source"],
        warehouse_url=args["warehouse"],
        cache_path=Path(args["cache"]),
        capture=args.get("capture", {}),
        # a source outside the repo's catalog schemas (the snapshot's MariaDB database)
        catalog_dir=Path(args["catalog_dir"]) if args.get("catalog_dir") else None,
    )


def billing_sync_snapshot(args: Args) -> Args:
    """The first load of ``args["tables"]`` (all when absent) by the engine, timed.

    Tables in ``args["untimed"]`` load first, outside the clock (the parents that the
    timed table's rows refer to).
    """
    # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
    from billing_sync.bench.profile import StageTimer, install
    from billing_sync.engine.sync import SyncEngine

    timer = StageTimer()
    install(timer)
    engine = SyncEngine.from_settings(_settings(args))
    with engine:
        engine.setup()
        # Snapshot chunks validate in Polars: no GX to import (DESIGN §6).
        warm = engine.polars_validator.warm_up()
        pairs = {mapping.table: (catalog, mapping) for catalog, mapping in engine.tables()}

        def load(tables: list[str]) -> tuple[int, int]:
            rows = chunks = 0
            for table in tables:
                catalog, mapping = pairs[table]
                while True:
                    batch = engine.sync_table(catalog, mapping)
                    rows += batch.rows_read
                    chunks += 1
                    if not batch.more_waiting:
                        break
            return rows, chunks

        untimed_started = time.perf_counter()
        untimed_rows, _ = load(args.get("untimed", []))
        untimed_seconds = time.perf_counter() - untimed_started
        timer.current.clear()
        started = time.perf_counter()
        rows, chunks = load(args.get("tables") or list(pairs))
        seconds = time.perf_counter() - started
        timer.batch(seconds, rows)
    return {
        "stages": {k: round(v, 3) for k, v in timer.batches[-1].items() if not k.startswith("_")},
        "seconds": seconds,
        "rows": rows,
        "chunks": chunks,
        "untimed_rows": untimed_rows,
        "untimed_seconds": untimed_seconds,
        "validation_warm_up_seconds": warm,
    }


def dlt_load(args: Args) -> Args:
    """One dlt pipeline run: ``sql_table`` with a backend, into PostgreSQL or DuckDB."""
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
    import dlt
    from dlt.sources.sql_database import sql_table

    backend_kwargs: Args = {}
    if args["backend"] == "connectorx":
        # Streaming Arrow batches keeps memory bounded by the chunk size.
        backend_kwargs = {"conn": args["cx_url"], "return_type": "arrow_stream"}
    resource = sql_table(
        credentials=args["source"],
        table=args["table"],
        schema=args["schema"],
        backend=args["backend"],
        chunk_size=args.get("chunk_size", 100_000),
        reflection_level="full_with_precision",
        backend_kwargs=backend_kwargs,
    )
    destination: Any = (
        dlt.destinations.postgres(args["target"])
        if args["destination"] == "postgres"
        else dlt.destinations.duckdb(args["target"])
    )
    file_format: Any = args.get("file_format")
    pipeline = dlt.pipeline(
        pipeline_name=args["pipeline"],
        destination=destination,
        dataset_name=args["dataset"],
        pipelines_dir=args["pipelines_dir"],
    )
    started = time.perf_counter()
    info = pipeline.run(resource, write_disposition="replace", loader_file_format=file_format)
    seconds = time.perf_counter() - started
    formats = sorted(
        {
            job.job_file_info.file_format
            for package in info.load_packages
            for job in package.jobs["completed_jobs"]
            if job.job_file_info.table_name == args["table"].lower()
        }
    )
    return {"seconds": seconds, "file_formats": formats}


def copy_floor(args: Args) -> Args:
    """``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` piped into ``COPY ... FROM STDIN``."""
    # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
    import psycopg
    from psycopg import sql

    from billing_sync.bench.data import source_tables

    table = source_tables()[args["table"]]
    columns = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    definitions = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in table.columns
    )
    target = sql.Identifier("floor", table.name)
    with (
        psycopg.connect(args["source"], autocommit=True) as source,
        psycopg.connect(args["warehouse"]) as warehouse,
    ):
        warehouse.execute("CREATE SCHEMA IF NOT EXISTS floor")
        warehouse.execute(
            sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
                target, definitions, sql.SQL(", ").join(map(sql.Identifier, table.key))
            )
        )
        warehouse.commit()
        started = time.perf_counter()
        out_sql = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)").format(
            columns, sql.Identifier(args["schema"], table.name)
        )
        in_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(target, columns)
        with (
            source.cursor() as out_cur,
            out_cur.copy(out_sql) as out,
            warehouse.cursor() as in_cur,
            in_cur.copy(in_sql) as into,
        ):
            for block in out:
                into.write(block)
        warehouse.commit()
        seconds = time.perf_counter() - started
    return {"seconds": seconds}


def arrow_duckdb_floor(args: Args) -> Args:
    """ConnectorX streaming Arrow batches straight into a DuckDB table (``args["quote"]``:
    the source engine's identifier quote, default PostgreSQL's)."""
    # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
    import connectorx as cx
    import duckdb

    from billing_sync.bench.data import source_tables

    table = source_tables()[args["table"]]
    quote = args.get("quote", '"')
    names = ", ".join(f"{quote}{name}{quote}" for name in table.column_names)
    casts = ", ".join(
        f'CAST("{name}" AS DECIMAL(12,2)) AS "{name}"' if "numeric" in kind else f'"{name}"'
        for name, kind in table.columns
    )
    Path(args["target"]).unlink(missing_ok=True)
    con = duckdb.connect(args["target"])
    started = time.perf_counter()
    reader = cx.read_sql(
        args["cx_url"],
        f"SELECT {names} FROM {quote}{args['schema']}{quote}.{quote}{table.name}{quote}",
        return_type="arrow_stream",
        batch_size=100_000,
    )
    con.register("incoming", reader)
    con.execute(f'CREATE TABLE "{table.name.lower()}" AS SELECT {casts} FROM incoming')
    con.close()
    return {"seconds": time.perf_counter() - started}


def engine_loop(args: Args) -> Args:
    """The tail without Dagster: one tier's micro-batches until the pause file appears.

    With ``profile`` the engine's stages are timed per micro-batch (see
    :mod:`billing_sync.bench.profile`).
    """
    # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
    from billing_sync.bench.profile import StageTimer, install
    from billing_sync.engine.sync import SyncEngine

    timer = StageTimer() if args.get("profile") else None
    wrapped = install(timer) if timer else []
    settings = _settings(args)
    tier = settings.tier(args["tier"])
    stop_file = Path(args["stop_file"])
    deadline = time.monotonic() + float(args.get("max_seconds", 600))
    batches = rows = 0
    with SyncEngine.from_settings(settings, run_id=f"bench-{args['tier']}") as engine:
        engine.setup()
        engine.validator.warm_up()
        Path(args["ready_file"]).touch()

        last_end = time.perf_counter()

        def on_batch(results: list[Any]) -> None:
            nonlocal batches, rows, last_end
            batches += 1
            read = sum(result.rows_read for result in results)
            rows += read
            now = time.perf_counter()
            seconds = sum(result.seconds for result in results)
            if timer is not None:
                # What a change waited before this batch read it: the capture delay and
                # the floor of its horizon, and the loop's idle time before the batch.
                reading = [result for result in results if result.rows_read] or results
                timer.batch(seconds, read, {
                    "capture delay": max((r.delay_seconds for r in reading), default=0.0),
                    "horizon floor": max((r.floor_seconds for r in reading), default=0.0),
                    "poll (idle before the batch)": now - last_end - seconds,
                })  # fmt: skip
            last_end = now

        engine.run(
            tier=args["tier"],
            batches=10**9,
            poll_interval=float(args.get("poll_interval", tier.poll_interval_seconds)),
            probe_interval=float(args.get("probe_interval", tier.probe_interval_seconds)),
            on_batch=on_batch,
            should_stop=lambda: stop_file.exists() or time.monotonic() > deadline,
        )
    result: Args = {"batches": batches, "rows": rows}
    if timer is not None:
        result["profile"] = timer.summary()
        result["profile_all_batches"] = timer.summary(only_with_rows=False)
        result["wrapped"] = wrapped
    return result


def extract(args: Args) -> Args:
    """Read the snapshot table into Arrow one way (``args["method"]``), in 50k-row chunks.

    The chunks are the engine's snapshot queries (:func:`build_snapshot_query`, key order).
    ``cursor``: a psycopg cursor's rows to ``pa.array`` per column (the engine before);
    ``copy-csv``: ``COPY (...) TO STDOUT (FORMAT csv)`` parsed by pyarrow (the engine now,
    :meth:`SourceSession.read_arrow`); ``connectorx``: its Arrow result; ``adbc``: the ADBC
    PostgreSQL driver's. Returns the seconds, and whether '' and NULL and the decimals
    came through exact.
    """
    # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
    import psycopg
    import pyarrow as pa
    import pyarrow.compute as pc

    from billing_sync.capture.snapshot import build_snapshot_query
    from billing_sync.config import load_catalog
    from billing_sync.source.schema import source_schema
    from billing_sync.source.session import SourceSession

    mapping = load_catalog(args.get("system", "icoms")).by_table[args["table"]]
    schema = source_schema(mapping)
    method = args["method"]
    chunk = int(args.get("chunk", 50_000))
    session = SourceSession(args["source"])
    if method == "cursor":
        session.copy_reads = False  # read_arrow takes the cursor path
    other: Any = None
    if method == "adbc":
        # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
        import adbc_driver_postgresql.dbapi as adbc

        other = adbc.connect(args["adbc_url"])

    def read(query: Any) -> pa.Table:
        if method in ("cursor", "copy-csv"):
            return session.read_arrow(query, schema)
        text = psycopg.ClientCursor(session._conn).mogrify(query.text, query.params)
        if method == "connectorx":
            # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
            import connectorx as cx

            return cx.read_sql(args["cx_url"], text, return_type="arrow")
        with other.cursor() as cursor:
            cursor.execute(text)
            return cursor.fetch_arrow_table()

    tables: list[pa.Table] = []
    after: tuple[Any, ...] | None = None
    started = time.perf_counter()
    while True:
        query = build_snapshot_query(mapping, schema=args["schema"], after_key=after, limit=chunk)
        table = read(query)
        tables.append(table)
        if table.num_rows < chunk:
            break
        last = table.slice(table.num_rows - 1, 1).to_pylist()[0]
        after = tuple(last[name] for name in mapping.key)
    seconds = time.perf_counter() - started
    session.close()
    if other is not None:
        other.close()
    table = pa.concat_tables(tables)
    user = table.column("CHG_USER")
    amount = table.column("AMOUNT")
    return {
        "seconds": seconds,
        "rows": table.num_rows,
        "empty_strings": int(pc.sum(pc.equal(user, "")).as_py() or 0),
        "nulls": user.null_count,
        "amount_type": str(amount.type),
        "schema_matches": table.schema.equals(schema),
    }


TASKS: dict[str, Callable[[Args], Args]] = {
    "billing-sync-snapshot": billing_sync_snapshot,
    "dlt": dlt_load,
    "copy-floor": copy_floor,
    "arrow-duckdb-floor": arrow_duckdb_floor,
    "engine-loop": engine_loop,
    "extract": extract,
    "validate-paths": lambda args: _validate_paths(args),
    "dlt-incremental": lambda args: _dlt_tail("run_once", args),
    "dlt-incremental-loop": lambda args: _dlt_tail("run_loop", args),
}


def _dlt_tail(function: str, args: Args) -> Args:
    # why: a worker imports only its task's stack: the parent measures its CPU
    from billing_sync.bench import dlt_tail

    result: Args = getattr(dlt_tail, function)(args)
    return result


def _validate_paths(args: Args) -> Args:
    # why: a worker imports only its task's stack: the parent measures its CPU and peak RSS
    from billing_sync.bench.paths import validate_paths

    return validate_paths(args)


def main(argv: list[str]) -> int:
    task, raw = argv[0], argv[1]
    result = TASKS[task](json.loads(raw))
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
