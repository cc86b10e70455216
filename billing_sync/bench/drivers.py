"""What runs the pipeline during a tail: the real Dagster daemon, or engine loops.

:class:`DagsterDriver` starts ``dagster-daemon run -m billing_sync.definitions`` with its
own instance folder (the repository's ``dagster.yaml``), settings file and environment,
as ``billing-sync demo`` does: the sensors start the runs. :class:`EngineDriver` runs one
worker process per tier looping :meth:`SyncEngine.run`, without Dagster (the scale
scenario and the micro-batch profile). Both stop through the pause file, then by signal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
import yaml

from billing_sync.bench import bench_hmac_key
from billing_sync.demo.run import stop_process_group
from billing_sync.topology.layout import REPO_ROOT


@dataclass(frozen=True)
class Pipeline:
    """Where a tail syncs from and to, and its settings (the engine's, as YAML)."""

    source: str
    warehouse: str
    cache: Path
    state_dir: Path
    settings: dict[str, Any] = field(default_factory=dict)  # capture, tiers

    @property
    def pause_file(self) -> Path:
        return self.state_dir / "paused"


class Driver(Protocol):
    name: str

    def start(self) -> None: ...

    def pids(self) -> list[int]: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


def _clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_SYNC_", "DAGSTER_"))}
    env["BILLING_SYNC_HMAC_KEY"] = bench_hmac_key()
    return env


class DagsterDriver:
    name = "Dagster daemon + sensors"

    def __init__(self, pipeline: Pipeline, workdir: Path) -> None:
        self.pipeline = pipeline
        self.home = workdir / "dagster"
        self.config = workdir / "billing-sync.yaml"
        self.log_path = workdir / "dagster-daemon.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        # why: defs imports dagster (0.7 s): only the Dagster scenario pays it
        from billing_sync.defs.instance import prepare_instance

        self.pipeline.state_dir.mkdir(parents=True, exist_ok=True)
        self.pipeline.pause_file.unlink(missing_ok=True)
        prepare_instance(self.home, config=REPO_ROOT / "dagster.yaml")
        # No secrets in the file: the URLs go through the environment.
        self.config.write_text(yaml.safe_dump(self.pipeline.settings))
        env = {
            **_clean_environment(),
            "DAGSTER_HOME": str(self.home),
            "BILLING_SYNC_CONFIG": str(self.config),
            "BILLING_SYNC_STATE_DIR": str(self.pipeline.state_dir),
            "BILLING_SYNC_SOURCE_URL": self.pipeline.source,
            "BILLING_SYNC_WAREHOUSE_URL": self.pipeline.warehouse,
            "BILLING_SYNC_CACHE_PATH": str(self.pipeline.cache),
        }
        command = [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run", "-m", "billing_sync.definitions",
        ]  # fmt: skip
        self.started_at = time.time()
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=REPO_ROOT,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process else []

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        self.pipeline.pause_file.touch()
        _wait_quiet(self.pipeline, timeout=15.0)
        self._wait_runs_finished(timeout=45.0)
        stop_process_group(self.process)
        self.pipeline.pause_file.unlink(missing_ok=True)

    def _wait_runs_finished(self, *, timeout: float) -> None:
        """Paused: runs end after their batch, a queued one right after it starts. Killing
        one in flight would mark it failed."""
        # why: defs imports dagster (0.7 s): only the Dagster scenario pays it
        from billing_sync.defs.instance import wait_runs_finished

        wait_runs_finished(self.home, timeout=timeout, alive=self.alive)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def run_stats(self, *, since: float) -> dict[str, Any]:
        """Runs created since ``since`` (epoch seconds): count, launch latency, duration."""
        # why: defs imports dagster (0.7 s): only the Dagster scenario pays it
        from billing_sync.defs.instance import run_stats

        return run_stats(self.home, since=since)


def _wait_quiet(pipeline: Pipeline, *, timeout: float) -> None:
    """After pausing: until no watermark moved for 2 s (runs end after their batch)."""

    deadline = time.monotonic() + timeout
    try:
        with psycopg.connect(pipeline.warehouse, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT coalesce(extract(epoch FROM clock_timestamp() - max(updated_at)), 1e9)"
                    " FROM billing_sync.watermark"
                ).fetchone()
                if row and float(row[0]) > 2.0:
                    return
                time.sleep(0.3)
    except psycopg.Error:
        return


class EngineDriver:
    """One ``engine-loop`` worker per tier, each a long-lived loop like a Dagster run."""

    name = "engine loops (no Dagster), one process per tier"

    def __init__(
        self, pipeline: Pipeline, workdir: Path, *, tiers: tuple[str, ...], profile: bool = False
    ) -> None:
        self.pipeline = pipeline
        self.workdir = workdir
        self.tiers = tiers
        self.profile = profile
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.results: dict[str, dict[str, Any]] = {}

    def _args(self, tier: str) -> dict[str, Any]:
        poll = self.pipeline.settings.get("tiers", {}).get(tier, {}).get("poll_interval_seconds")
        return {
            "tier": tier,
            "state_dir": str(self.pipeline.state_dir),
            "source": self.pipeline.source,
            "warehouse": self.pipeline.warehouse,
            "cache": str(self.pipeline.cache),
            "capture": self.pipeline.settings.get("capture", {}),
            **({} if poll is None else {"poll_interval": poll}),
            "stop_file": str(self.pipeline.pause_file),
            "ready_file": str(self.workdir / f"ready-{tier}"),
            "profile": self.profile,
            "max_seconds": 3600,
        }

    def start(self) -> None:
        self.pipeline.state_dir.mkdir(parents=True, exist_ok=True)
        self.pipeline.pause_file.unlink(missing_ok=True)
        for tier in self.tiers:
            (self.workdir / f"ready-{tier}").unlink(missing_ok=True)
            command = [sys.executable, "-m", "billing_sync.bench.worker", "engine-loop",
                       json.dumps(self._args(tier))]  # fmt: skip
            self.processes[tier] = subprocess.Popen(
                command,
                env=_clean_environment(),
                stdout=subprocess.PIPE,
                stderr=(self.workdir / f"engine-{tier}.log").open("a"),
                text=True,
            )

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes.values()]

    def alive(self) -> bool:
        return all(process.poll() is None for process in self.processes.values())

    def ready(self) -> bool:
        return all((self.workdir / f"ready-{tier}").exists() for tier in self.tiers)

    def stop(self) -> None:
        self.pipeline.pause_file.touch()
        for tier, process in self.processes.items():
            try:
                out, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
            for line in reversed(out.strip().splitlines()):
                if line.startswith("{"):
                    self.results[tier] = json.loads(line)
                    break
        self.pipeline.pause_file.unlink(missing_ok=True)

    def log_tail(self, chars: int = 2000) -> str:
        parts = []
        for tier in self.tiers:
            try:
                text = (self.workdir / f"engine-{tier}.log").read_text(errors="replace")
            except OSError:
                continue
            parts.append(f"[{tier}] {text[-chars:]}")
        return "\n".join(parts)
