"""End to end: the real dagster-daemon ticks the sensor, which starts a run that succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from billing_sync.defs.instance import open_instance, prepare_instance
from billing_sync.postgres import DatabaseUrls

pytestmark = [pytest.mark.dagster, pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_daemon_sensor_starts_a_sync_run_that_succeeds(
    settings_file: Path, databases: DatabaseUrls, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    prepare_instance(home, config=REPO / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "BILLING_SYNC_CONFIG": str(settings_file)}
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-m",
            "billing_sync.definitions",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with open_instance(home) as instance:
            succeeded = _wait_for_run(instance, "sync_priority_job", timeout=150)
            assert succeeded is not None, (tmp_path / "daemon.log").read_text()[-3000:]
            assert succeeded.tags.get("dagster/sensor_name") == "sync_priority_sensor"
            events = instance.fetch_materializations(dg.AssetKey(["warehouse", "payment"]), limit=1)
            assert events.records
        with psycopg.connect(databases.warehouse) as conn:
            row = conn.execute("SELECT count(*) FROM billing.payment").fetchone()
        assert row is not None and row[0] > 0
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)


def _wait_for_run(
    instance: dg.DagsterInstance, job: str, *, timeout: float
) -> dg.DagsterRun | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
        )
        if runs:
            return runs[0]
        failed = instance.get_runs(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.FAILURE]), limit=1
        )
        if failed:
            errors = [
                str(event.dagster_event.event_specific_data)
                for event in instance.all_logs(failed[0].run_id)
                if event.dagster_event and event.dagster_event.is_failure
            ]
            pytest.fail(f"run {failed[0].run_id} failed: {errors}")
        time.sleep(1)
    return None
