"""dlt following the peers' table incrementally (run inside a bench worker process).

How dlt's documentation says to follow a table: ``sql_table`` with
``incremental=dlt.sources.incremental("updated_at")`` (the cursor; ``lag`` seconds re-read
behind the last value when given), ``primary_key="id"`` and ``write_disposition="merge"``
into PostgreSQL, the ``pyarrow`` backend (the fastest here for small increments; issue 20
measured it so). The pipeline keeps its cursor in its state (``pipelines_dir``), so every
run reads only rows stamped at or after the last value it saw.

- :func:`run_once`: one run, then the process ends (a scheduler starting dlt per run).
- :func:`run_loop`: runs back to back in one process until ``stop_file`` exists, the
  SQLAlchemy engine and the pipeline kept between runs; one JSON line per run on stdout.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

Args = dict[str, Any]


def _quiet() -> None:
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def _pipeline(args: Args) -> Any:
    # why: a worker imports only its task's stack: the parent measures its CPU
    import dlt

    return dlt.pipeline(
        pipeline_name=args["pipeline"],
        destination=dlt.destinations.postgres(args["target"]),
        dataset_name=args["dataset"],
        pipelines_dir=args["pipelines_dir"],
    )


def _resource(args: Args, credentials: Any) -> Any:
    # why: a worker imports only its task's stack: the parent measures its CPU
    import dlt
    from dlt.sources.sql_database import sql_table

    return sql_table(
        credentials=credentials,
        table=args["table"],
        schema=args["schema"],
        backend="pyarrow",
        incremental=dlt.sources.incremental(args["cursor"], lag=args.get("lag")),
        primary_key=args["key"],
        write_disposition="merge",
        reflection_level="full_with_precision",
        chunk_size=args.get("chunk_size", 50_000),
    )


def _one(pipeline: Any, args: Args, credentials: Any) -> Args:
    started = time.perf_counter()
    pipeline.run(_resource(args, credentials))
    trace = pipeline.last_trace
    rows = 0
    if trace is not None:
        for step in trace.steps:
            if step.step == "normalize" and step.step_info is not None:
                counts = step.step_info.row_counts or {}
                rows = int(counts.get(args["table"], 0))
    return {"seconds": time.perf_counter() - started, "rows": rows, "ended": time.time()}


def run_once(args: Args) -> Args:
    _quiet()
    return _one(_pipeline(args), args, args["source"])


def run_loop(args: Args) -> Args:
    _quiet()
    # why: a worker imports only its task's stack: the parent measures its CPU
    import sqlalchemy

    engine = sqlalchemy.create_engine(args["source"])
    pipeline = _pipeline(args)
    stop = Path(args["stop_file"])
    runs = 0
    while not stop.exists():
        print(json.dumps(_one(pipeline, args, engine)), flush=True)
        runs += 1
    engine.dispose()
    return {"runs": runs}
