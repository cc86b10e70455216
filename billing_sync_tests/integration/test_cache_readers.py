"""Issue 3: analysts query the DuckDB cache while the pipeline runs under the workload.

Separate processes on a real DuckDB file: a reader polls every 100 ms for a minute
through :func:`~billing_sync.serve.reader.query_cache` and never sees an error; another
holds a read-only connection open for 30 s, which leaves the cache behind (visible in
``status`` and in the Dagster metadata) without failing a batch, and the cache catches
up from the warehouse once it lets go.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from billing_sync.defs.metadata import materializations
from billing_sync.engine.batch import TableBatch
from billing_sync.engine.status import table_status
from billing_sync.engine.status_report import format_status
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import Workload
from billing_sync_tests.integration.helpers import (
    assert_parity,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLLING_READER = """
import json, sys, time
from billing_sync.serve.reader import query_cache

path, seconds = sys.argv[1], float(sys.argv[2])
queries, errors, latencies = 0, [], []
print("started", flush=True)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    began = time.monotonic()
    try:
        frame = query_cache(path, "SELECT count(*) AS n, sum(amount) AS total FROM billing.payment"
                                  " WHERE NOT _is_deleted AND site_id = ?", ["001"])
        assert frame.height == 1
        queries += 1
    except Exception as error:  # counted: the test wants none
        errors.append(repr(error)[:300])
    latencies.append(time.monotonic() - began)
    time.sleep(max(0.0, 0.1 - (time.monotonic() - began)))
latencies.sort()
print(json.dumps({"queries": queries, "errors": errors,
                  "p50": latencies[len(latencies) // 2], "max": latencies[-1]}), flush=True)
"""

HOLDING_READER = """
import sys, time
from pathlib import Path
from billing_sync.load.locking import open_duckdb

con = open_duckdb(sys.argv[1], read_only=True, wait_seconds=30)
con.execute("SELECT count(*) FROM billing.payment").fetchall()
Path(sys.argv[3]).touch()  # holding
time.sleep(float(sys.argv[2]))
con.close()
Path(sys.argv[4]).touch()  # released
"""

RUN_SECONDS = 60.0
HOLD_FROM, HOLD_SECONDS = 8.0, 30.0


@dataclass
class Phases:
    """What the sync did before, while and after a reader held the cache open."""

    held: Path
    released: Path
    during: list[TableBatch] = field(default_factory=list)
    after: list[TableBatch] = field(default_factory=list)
    status_text: str = ""

    def phase(self) -> str:
        return "after" if self.released.exists() else "during" if self.held.exists() else "before"


def _reader(script: str, *args: object) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process


def test_readers_never_fail_and_a_held_cache_falls_behind_then_catches_up(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=100)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0.3})
    cache_path = settings.resolved_cache_path
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))  # the first load
        with Workload(databases.source, rate=150, seed=3, hard_deletes=False):
            polling = _reader(POLLING_READER, cache_path, RUN_SECONDS)
            assert polling.stdout is not None and polling.stdout.readline().strip() == "started"
            started = time.monotonic()
            phases = Phases(tmp_path / "held", tmp_path / "released")
            holder: subprocess.Popen[str] | None = None

            def observe(results: list[TableBatch]) -> None:
                nonlocal holder
                # A loaded machine can make one micro-batch outlast the hold: batches are
                # told apart by what they met (a busy cache), not by when they were seen.
                phase = phases.phase()
                if phase == "during":
                    phases.during.extend(results)
                    if "cache behind" not in phases.status_text:
                        phases.status_text = format_status(table_status(engine))
                elif phase == "after":
                    (phases.during if any(b.cache_error for b in results) else phases.after).extend(
                        results
                    )
                elif holder is None and time.monotonic() - started >= HOLD_FROM:
                    holder = _reader(HOLDING_READER, cache_path, HOLD_SECONDS, phases.held,
                                     phases.released)  # fmt: skip

            engine.run(
                tier=None,
                batches=100_000,
                poll_interval=0.3,
                on_batch=observe,
                should_stop=lambda: (
                    time.monotonic() - started > RUN_SECONDS and len(phases.after) > 0
                ),  # a micro-batch after the hold, however late
            )
        assert holder is not None and holder.wait(10) == 0
        engine.drain(until=source_now(databases.source), timeout=180)
        out, _ = polling.communicate(timeout=30)
        polled = json.loads(out.strip().splitlines()[-1])

        # The polling reader: one query every 100 ms for a minute, no error at all.
        assert polled["errors"] == [], polled["errors"]
        # 100 ms apart, or slower when the machine is loaded (p50 250 ms at load 25).
        assert polled["queries"] >= RUN_SECONDS / 0.6, polled

        # While held: batches kept committing; the cache fell behind, with its lag known.
        during, after = phases.during, phases.after
        busy = [b for b in during if b.cache_error]
        assert busy and all("held by another process" in (b.cache_error or "") for b in busy)
        assert any(b.changed for b in during)
        lagging = [b for b in busy if b.cache_lag is not None and b.cache_lag.behind]
        assert lagging and max(b.cache_lag.seconds for b in lagging if b.cache_lag) > 5
        events = [e for b in lagging for e in materializations(b)]
        observed = [e for e in events if isinstance(e, dg.AssetObservation)]
        assert observed and all(e.asset_key.path[0] == "cache" for e in observed)
        assert max(float(e.metadata["cache_lag_seconds"].value) for e in observed) > 5  # type: ignore[arg-type]
        assert "cache behind the warehouse" in phases.status_text, phases.status_text

        # Let go: the run itself caught the cache up from the warehouse, before the drain.
        assert any(b.cache is not None and b.cache.caught_up for b in after)
        assert not engine._cache_behind
        assert_parity(engine)

        held, waits = engine.cache.held, engine.cache.waits
        window = (phases.held.stat().st_mtime, phases.released.stat().st_mtime)
        print(
            f"\npolling reader: {polled['queries']} queries, p50 {polled['p50'] * 1000:.0f} ms,"
            f" max {polled['max'] * 1000:.0f} ms. Writer outside the 30 s hold: "
            f"{waits.without(*window).summary()}; during it: {waits.within(*window).summary()};"
            f" it held the file {held.holds} times,"
            f" {held.seconds / max(held.holds, 1) * 1000:.0f} ms mean,"
            f" {held.max_seconds * 1000:.0f} ms max; busy batches {len(busy)} of {len(during)}"
        )
        # The gate: a reader polling in a loop does not starve the writer.
        outside = waits.without(*window)
        assert outside.gave_up <= 0.1 * len(outside.opens), outside.summary()
