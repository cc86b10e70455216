"""The contenders of ``tail-peers``, each following the peers' table into its own database.

- Sling: ``sling run --mode incremental --update-key updated_at --primary-key id`` from
  PostgreSQL to PostgreSQL, one process per run, back to back (how its CLI is run from a
  scheduler or a loop: Sling has no long-lived mode).
- dlt: :mod:`.dlt_tail` (``sql_table`` + ``incremental`` + merge, pyarrow backend), either
  runs back to back in one long-lived process, or one fresh process per run.
- billing-sync: the Dagster daemon and its sensors (:class:`.drivers.DagsterDriver`), the
  priority tier syncing ``peers.account_balance`` as in production.

Each counts its CPU seconds (its processes, ended ones included) and its runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import psutil

from billing_sync.bench import bench_hmac_key
from billing_sync.bench.drivers import DagsterDriver, Pipeline
from billing_sync.bench.measure import TreeCpu, run_measured
from billing_sync.bench.peers import (
    dlt_destination_url,
    dlt_unavailable,
    sling_binary,
    sling_environment,
    sling_unavailable,
)
from billing_sync.bench.plain_targets import TargetTable
from billing_sync.simulator.plain import SCHEMA, TABLE


class TailContender(Protocol):
    name: str
    settings: str
    target: TargetTable

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def alive(self) -> bool: ...

    def cpu_seconds(self) -> float: ...

    def runs(self) -> int: ...

    def problems(self) -> list[str]: ...


@dataclass
class ProcessLoop:
    """A command run to its end, again and again, until :meth:`stop` (one thread)."""

    name: str
    settings: str
    target: TargetTable
    command: list[str]
    env: dict[str, str] | None = None
    prepare: Callable[[], None] | None = None
    _cpu: float = 0.0
    _runs: int = 0
    _failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.prepare is not None:
            self.prepare()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            measured = run_measured(self.command, env=self.env, timeout=600, interval=0.5)
            self._cpu += measured.cpu_seconds
            self._runs += 1
            if not measured.ok:
                self._failures.append(measured.error_tail(600))
                self._stop.wait(1.0)  # a failing peer is reported, not spun on

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=600)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def cpu_seconds(self) -> float:
        return self._cpu

    def runs(self) -> int:
        return self._runs

    def problems(self) -> list[str]:
        return self._failures[-3:]


class DltLongLived:
    """:func:`.dlt_tail.run_loop` in one worker process: runs back to back, no restart."""

    def __init__(
        self, name: str, settings: str, target: TargetTable, args: dict[str, Any], workdir: Path
    ) -> None:
        self.name, self.settings, self.target = name, settings, target
        self.args = {**args, "stop_file": str(workdir / f"{args['pipeline']}.stop")}
        self.log = workdir / f"{args['pipeline']}.log"
        self.out = workdir / f"{args['pipeline']}.runs"
        self.process: subprocess.Popen[bytes] | None = None
        self._cpu_before = 0.0

    def start(self) -> None:
        Path(self.args["stop_file"]).unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "billing_sync.bench.worker",
            "dlt-incremental-loop",
            json.dumps(self.args),
        ]
        self.process = subprocess.Popen(
            command, stdout=self.out.open("ab"), stderr=self.log.open("ab")
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self._cpu_before = self.cpu_seconds()
        Path(self.args["stop_file"]).touch()
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float:
        if self.process is None:
            return self._cpu_before
        try:
            times = psutil.Process(self.process.pid).cpu_times()
        except psutil.Error:
            return self._cpu_before
        return float(self._cpu_before + times.user + times.system)

    def runs(self) -> int:
        try:
            return sum(1 for line in self.out.read_text().splitlines() if line.startswith("{"))
        except OSError:
            return 0

    def problems(self) -> list[str]:
        if self.process is not None and self.process.poll() not in (None, 0):
            return [self.log.read_text(errors="replace")[-600:]]
        return []


class BillingSyncDagster:
    """billing-sync's Dagster daemon, sensors and runs (the priority tier's runs)."""

    def __init__(self, pipeline: Pipeline, workdir: Path) -> None:
        self.name = "billing-sync (Dagster daemon, priority tier)"
        self.settings = "engine defaults; sensors start long-lived runs"
        self.target = TargetTable(
            pipeline.warehouse,
            "billing.account_balance",
            key="balance_id",
            stamp="changed_at",
            deleted_flag="_is_deleted",
        )
        self.driver = DagsterDriver(pipeline, workdir)
        self._cpu_before = 0.0
        self._cpu: TreeCpu | None = None

    def start(self) -> None:
        self.driver.start()
        self._cpu = TreeCpu(self.driver.pids())

    def stop(self) -> None:
        self._cpu_before = self.cpu_seconds()
        self.driver.stop()
        self._cpu = None

    def alive(self) -> bool:
        return self.driver.alive()

    def cpu_seconds(self) -> float:
        return self._cpu_before + (self._cpu.total() if self._cpu is not None else 0.0)

    def runs(self) -> int:
        return int(self.driver.run_stats(since=0).get("runs", 0))

    def problems(self) -> list[str]:
        return [] if self.driver.alive() or self._cpu is None else [self.driver.log_tail(600)]

    def parity_check(self) -> str:
        """What the Dagster ``parity`` check does on its schedule (every 10 minutes):
        ``verify --repair`` of the table (hard deletes flagged ``_is_deleted``); its report."""
        # why: the engine's stack loads only for this step of the scenario
        from billing_sync.config import load_settings
        from billing_sync.engine.sync import SyncEngine
        from billing_sync.reconcile.verify import run_verify

        pipeline = self.driver.pipeline
        settings = load_settings(
            env={}, state_dir=pipeline.state_dir, source_url=pipeline.source,
            warehouse_url=pipeline.warehouse, cache_path=pipeline.cache,
            hmac_key=bench_hmac_key(), systems=pipeline.settings.get("systems", ["icoms"]),
        )  # fmt: skip
        lines: list[str] = []
        with SyncEngine.from_settings(settings) as engine:
            run_verify(engine, [], repair=True, echo=lines.append)
        return "\n".join(lines)


def sling_version() -> str:
    binary = sling_binary()
    if binary is None:
        return "?"
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip().removeprefix("Version:").strip() or "?"


def sling_loop(source: str, target_url: str, workdir: Path) -> ProcessLoop:
    binary = sling_binary()
    stream = f"{SCHEMA}.{TABLE.name}"
    command = [
        str(binary),
        "run",
        "--src-conn",
        "SRC",
        "--src-stream",
        stream,
        "--tgt-conn",
        "TGT",
        "--tgt-object",
        f"sling.{TABLE.name}",
        "--mode",
        "incremental",
        "--update-key",
        "updated_at",
        "--primary-key",
        "id",
    ]
    env = sling_environment(
        workdir / "sling-home", source=source, target=target_url, duckdb_path=None, copy_method=None
    )
    return ProcessLoop(
        f"Sling {sling_version()}, a process per run, back to back",
        "run --mode incremental --update-key updated_at --primary-key id (PostgreSQL to"
        " PostgreSQL)",
        TargetTable(target_url, f"sling.{TABLE.name}"),
        command,
        env,
    )


def dlt_args(
    source: str, target_url: str, workdir: Path, *, pipeline: str, lag: float | None
) -> dict[str, Any]:
    return {
        "source": source,
        "target": dlt_destination_url(target_url),
        "schema": SCHEMA,
        "table": TABLE.name,
        "cursor": "updated_at",
        "key": "id",
        "lag": lag,
        "dataset": "dlt_tail",
        "pipeline": pipeline,
        "pipelines_dir": str(workdir / "dlt"),
    }


def dlt_settings(lag: float | None) -> str:
    lagged = f", lag={lag:g}" if lag else ""
    return (
        f"sql_table(backend='pyarrow', incremental=incremental('updated_at'{lagged}),"
        " primary_key='id', write_disposition='merge'), PostgreSQL destination"
    )


def dlt_version() -> str:
    try:
        return metadata.version("dlt")
    except metadata.PackageNotFoundError:  # the version only decorates the report
        return "?"


def dlt_fresh_process(source: str, target_url: str, workdir: Path) -> ProcessLoop:
    args = dlt_args(source, target_url, workdir, pipeline="tail_fresh", lag=None)
    command = [
        sys.executable,
        "-m",
        "billing_sync.bench.worker",
        "dlt-incremental",
        json.dumps(args),
    ]
    return ProcessLoop(
        f"dlt {dlt_version()}, a fresh process per run, back to back",
        dlt_settings(None),
        TargetTable(target_url, f"dlt_tail.{TABLE.name}"),
        command,
    )


def dlt_long_lived(
    source: str, target_url: str, workdir: Path, *, lag: float | None
) -> DltLongLived:
    name = f"tail_long_lag{int(lag or 0)}"
    label = f", lag={lag:g}" if lag else ""
    return DltLongLived(
        f"dlt {dlt_version()}, one long-lived process{label}",
        dlt_settings(lag),
        TargetTable(target_url, f"dlt_tail.{TABLE.name}"),
        dlt_args(source, target_url, workdir, pipeline=name, lag=lag),
        workdir,
    )


def unavailable(kind: str) -> str | None:
    """Why a peer cannot run here, or None."""
    return sling_unavailable("postgres") if kind == "sling" else dlt_unavailable()


def wait_until(condition: Callable[[], bool], *, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False
