"""The production instance: the real dagster-daemon on PostgreSQL storage (dagster-postgres,
chosen because DAGSTER_PG_URL is set) starts a sync run from its sensor, and the run,
its events and the sensor ticks land in PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from billing_sync.defs.instance import (
    instance_config,
    instance_env,
    open_instance,
    prepare_instance,
)
from billing_sync.postgres import drop_database, ensure_database
from billing_sync_tests.dagster.test_daemon import _wait_for_run

pytestmark = [pytest.mark.dagster, pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_daemon_on_postgres_storage_runs_a_sync(
    settings_file: Path, pg_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    storage_url = ensure_database(pg_server_url, name)
    env = {"DAGSTER_PG_URL": storage_url}  # a plain postgresql:// URL, as operators write it
    config = instance_config(REPO, env)
    assert config.name == "dagster.postgres.yaml"
    dagster_env = instance_env(env)
    assert dagster_env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    home = tmp_path / "dagster_home"
    prepare_instance(home, config=config, env=dagster_env)
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_env["DAGSTER_PG_URL"])
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-m",
            "billing_sync.definitions",
        ],
        cwd=REPO,
        env={
            **os.environ,
            **dagster_env,
            "DAGSTER_HOME": str(home),
            "BILLING_SYNC_CONFIG": str(settings_file),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with open_instance(home) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            succeeded = _wait_for_run(instance, "sync_priority_job", timeout=150)
            assert succeeded is not None, (tmp_path / "daemon.log").read_text()[-3000:]
        with psycopg.connect(storage_url) as conn:
            runs = conn.execute(
                "SELECT count(*) FROM runs WHERE status = 'SUCCESS'"
                " AND pipeline_name = 'sync_priority_job'"
            ).fetchone()
            events = conn.execute(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
            ).fetchone()
            ticks = conn.execute("SELECT count(*) FROM job_ticks").fetchone()
        assert runs is not None and runs[0] >= 1
        assert events is not None and events[0] >= 1
        assert ticks is not None and ticks[0] >= 1
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        drop_database(pg_server_url, name)
