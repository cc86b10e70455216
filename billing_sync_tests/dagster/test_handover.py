"""Run hand-over through the real dagster-daemon (issue 15, item 2): the next run of a tier
is started while the current one syncs, waits warm on the tier lock, and takes over at once.

The gap is measured in the warehouse's batch log: the last batch of one run to the first of
the next, against the spacing of batches within a run. Before the tier lock the next run was
launched only after the previous ended (5-8 s: sensor tick, queue, process start, imports).
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from billing_sync.defs.instance import open_instance, prepare_instance
from billing_sync.defs.sensors import SUCCEEDS_TAG
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET

pytestmark = [pytest.mark.dagster, pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _writes(url: str, stop: threading.Event) -> None:
    """Changes a few PAYMENT rows (priority tier) every 0.2 s, so every batch logs rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        turn = 0
        while not stop.wait(0.2):
            turn += 1
            conn.execute(
                f'UPDATE icoms."PAYMENT" SET "AMOUNT" = "AMOUNT" + 0.01, {ICOMS_STAMP_SET}'
                ' WHERE "PAYMENT_NO" %% 40 = %s',
                (turn % 40,),
            )


def _batches_by_run(url: str) -> dict[str, list[datetime]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT run_id, committed_at FROM billing_sync.batch_log WHERE kind = 'tail'"
            " AND source_table = 'PAYMENT' AND run_id IS NOT NULL ORDER BY committed_at"
        ).fetchall()
    runs: dict[str, list[datetime]] = {}
    for run_id, at in rows:
        runs.setdefault(run_id, []).append(at)
    return runs


def test_the_next_run_waits_warm_and_takes_the_tier_over_without_a_gap(
    settings_file: Path, databases: DatabaseUrls, tmp_path: Path
) -> None:
    settings = yaml.safe_load(settings_file.read_text())
    settings["tiers"]["priority"].update(batches_per_run=30, poll_interval_seconds=0.3)
    settings_file.write_text(yaml.safe_dump(settings))
    home = tmp_path / "dagster_home"
    prepare_instance(home, config=REPO / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "BILLING_SYNC_CONFIG": str(settings_file)}
    stop = threading.Event()
    writer = threading.Thread(target=_writes, args=(databases.source, stop), daemon=True)
    writer.start()
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m",
         "billing_sync.definitions"],
        cwd=REPO, env=env, stdout=(tmp_path / "daemon.log").open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        with open_instance(home) as instance:
            done = _wait_for_successes(instance, "sync_priority_job", count=2, timeout=420)
            assert len(done) >= 2, (tmp_path / "daemon.log").read_text()[-3000:]
            successors = [run for run in done if run.tags.get(SUCCEEDS_TAG)]
            assert successors, "the second run was started while the first synced"
    finally:
        stop.set()
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
    runs = sorted(_batches_by_run(databases.warehouse).values(), key=lambda stamps: stamps[0])
    assert len(runs) >= 2, runs
    within = [
        (later - earlier).total_seconds()
        for stamps in runs
        for earlier, later in itertools.pairwise(stamps)
    ]
    gaps = [(after[0] - before[-1]).total_seconds() for before, after in itertools.pairwise(runs)]
    spacing = statistics.median(within)
    print(f"hand-over gaps {gaps} s; batch spacing within a run: median {spacing:.2f} s")
    assert max(gaps) < max(3.0, 3 * spacing), (gaps, spacing)


def _wait_for_successes(
    instance: dg.DagsterInstance, job: str, *, count: int, timeout: float
) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout
    runs: list[dg.DagsterRun] = []
    while time.monotonic() < deadline:
        runs = list(
            instance.get_runs(
                filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS])
            )
        )
        if len(runs) >= count:
            return runs
        failed = instance.get_runs(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.FAILURE]), limit=1
        )
        assert not failed, f"run {failed[0].run_id} failed"
        time.sleep(1)
    return runs
