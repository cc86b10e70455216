"""CPU seconds per 1,000 captured rows of the sync engine alone (issue 18's capacity model),
run by ``scripts/engine-cpu``: a seeded biller, the first load, then a backlog the
simulator's workload writes while nothing syncs, then one drain of it, timed in CPU: this
process (capture, transform, validation with its shadow thread, warehouse merge, cache
apply) and the PostgreSQL server's processes (source reads and warehouse writes: both
databases are on it). CPU time, not wall time: the machine is shared (say the load
average with the figure). Dagster's fixed cost (daemon, code server, a run worker's
start) is not in it: ``bench capacity`` measures the whole.

    scripts/engine-cpu [--accounts 3000] [--seconds 60] [--rate 2000]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import psutil

from billing_sync.bench.tail import batch_stats
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls, ensure_database
from billing_sync.simulator import Workload
from billing_sync_tests.chaos import RestartablePostgres
from billing_sync_tests.chaos_cases import load_average
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def _cpu_server(postmaster_pid: int) -> float:
    """The server's processes now (a backend that exited meanwhile is not counted: the
    engine's sessions stay open for the whole drain)."""
    main = psutil.Process(postmaster_pid)
    total = 0.0
    for process in [main, *main.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _now(url: str) -> object:
    import psycopg  # why: the only direct query of this script

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/engine-cpu", description=__doc__)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=60.0, help="backlog written for this long")
    parser.add_argument("--rate", type=float, default=2000.0, help="workload rows/s asked")
    args = parser.parse_args(argv)
    os.environ.setdefault("BILLING_SYNC_HMAC_KEY", "billing-sync-engine-cpu-only-hmac-key")
    server = RestartablePostgres.start()
    try:
        base = server.url
        urls = DatabaseUrls(
            source=ensure_database(base, f"src_{uuid.uuid4().hex[:6]}"),
            warehouse=ensure_database(base, f"wh_{uuid.uuid4().hex[:6]}"),
        )
        seeded_source(urls, accounts=args.accounts)
        state = Path(tempfile.mkdtemp(prefix="billing-sync-engine-cpu-"))
        settings = settings_for(urls, state)
        with SyncEngine.from_settings(settings) as engine:
            engine.setup()
            engine.drain(until=source_now(urls.source), timeout=1800)  # the first load
            workload = Workload(urls.source, rate=args.rate, systems=("icoms",))
            workload.start()
            time.sleep(args.seconds)
            workload.stop()
            changed = sum(workload.counts().values())
            pid = server.server.get_pid()
            print(f"backlog: {changed:,} changed rows; {load_average()}", flush=True)
            since, cpu0, pg0, wall0 = (
                _now(urls.warehouse),
                _cpu_self(),
                _cpu_server(pid),
                time.time(),
            )
            engine.drain(until=source_now(urls.source), timeout=1800)
            cpu, pg, wall = _cpu_self() - cpu0, _cpu_server(pid) - pg0, time.time() - wall0
            stats = batch_stats(urls.warehouse, since, _now(urls.warehouse))
    finally:
        server.cleanup()
    rows = stats["rows"]
    print(
        f"drained {rows:,} rows in {stats['batches']} batches, {wall:.1f} s wall;"
        f" engine CPU {cpu:.2f} s = {cpu / rows * 1000:.3f} s per 1,000 rows;"
        f" PostgreSQL CPU {pg:.2f} s = {pg / rows * 1000:.3f} s per 1,000 rows;"
        f" {load_average()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
