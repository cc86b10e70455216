"""Chaos with real processes (issue 18): ``billing-sync serve`` on a settings file, a
workload on the biller, a program SIGKILLed; how long until ``billing-sync health`` says
so, until supervisord has it back, until the sync is fresh again. Used by the suite
(billing_sync_tests/dagster/test_serve_chaos.py) and by scripts/chaos (the slower ones)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml

from billing_sync.config import load_settings
from billing_sync.entities import STATE_SCHEMA
from billing_sync.ops_cli import health_reasons
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
    def start(cls, settings_file: Path, *, webserver: bool = False) -> Served:
        raw = yaml.safe_load(settings_file.read_text())
        raw["serve"] = {
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
            start_new_session=True,
        )  # fmt: skip
        return cls(settings_file, process, log, Layout.from_settings(settings, webserver=webserver))

    @property
    def supervised(self) -> Supervised:
        return Supervised(self.layout, {}, cwd=REPO)

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


def kill_program(served: Served, program: str, warehouse_url: str) -> dict[str, float]:
    """SIGKILL ``program`` under load; seconds until health reports it, until supervisord
    has it RUNNING again, until a batch commits and every tier is within its SLA."""
    supervised = served.supervised
    before = supervised.pid(program)
    assert before, supervised.states()
    killed_at, started = time.time(), time.monotonic()
    os.kill(before, signal.SIGKILL)
    wait_for(
        lambda: any(f"serve: {program} " in line for line in served.health()),
        timeout=60,
        every=0.2,
    )
    reported = time.monotonic() - started
    wait_for(
        lambda: (s := supervised.states().get(program)) is not None
        and s.state == "RUNNING" and s.pid != before,
        timeout=120,
    )  # fmt: skip
    restored = time.monotonic() - started
    wait_for(
        lambda: served.last_batch_at(warehouse_url) > killed_at and served.tiers_fresh(),
        timeout=180,
        every=1.0,
    )
    fresh = time.monotonic() - started
    # Seconds from the kill.
    return {"health_reported_s": reported, "restored_s": restored, "fresh_again_s": fresh}
