"""Measuring processes: wall time, CPU seconds and peak memory of a process tree.

Every contender of the snapshot runs in a fresh process, so its peak RSS is its own and
not what an earlier contender left in the benchmark's process. A sampler thread adds up
the RSS of the whole tree (Sling runs the DuckDB CLI as a child) every 50 ms; CPU time
comes from ``wait4`` (the child and every descendant it waited for).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


@dataclass(frozen=True)
class Measured:
    """One finished process."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_json(self) -> dict[str, Any]:
        """The last line of stdout that is a JSON object (a worker's result)."""
        for line in reversed(self.stdout.strip().splitlines()):
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    return value
        return {}

    def error_tail(self, chars: int = 1500) -> str:
        text = (self.stderr.strip() or self.stdout.strip())[-chars:]
        return text or f"exit code {self.returncode}"


def tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_measured(
    command: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800.0,
    interval: float = 0.05,
) -> Measured:
    """Run ``command`` to its end; its stdout and stderr go to temporary files."""

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, env=dict(env) if env is not None else None, cwd=cwd, stdout=out, stderr=err
        )
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            try:
                process = psutil.Process(child.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                peak = max(peak, tree_rss(process))
                stop.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadline = started + timeout
        status = None
        usage = None
        while status is None:
            pid, status_code, usage_now = os.wait4(child.pid, os.WNOHANG)
            if pid:
                status, usage = status_code, usage_now
                break
            if time.perf_counter() > deadline:
                child.kill()
                _, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        peak = max(peak, (usage.ru_maxrss * 1024) if usage else 0)
        return Measured(
            returncode=child.returncode,
            wall_seconds=wall,
            cpu_seconds=(usage.ru_utime + usage.ru_stime) if usage else 0.0,
            peak_rss=peak,
            stdout=out.read(),
            stderr=err.read(),
        )


def run_worker(
    task: str, args: Mapping[str, Any], *, env: Mapping[str, str] | None = None, timeout: float
) -> Measured:
    """Run ``python -m billing_sync.bench.worker task`` with ``args`` as JSON."""
    command = [sys.executable, "-m", "billing_sync.bench.worker", task, json.dumps(dict(args))]
    return run_measured(command, env=env, timeout=timeout)


class TreeCpu:
    """CPU seconds used by process trees since :meth:`start`, sampled while they live.

    For every live process of the trees: its own user and system time plus that of its
    children it has reaped, so a run worker that ended still counts (in its parent).
    """

    def __init__(self, roots: Iterable[int]) -> None:
        self.roots = list(roots)
        self._start = 0.0

    def total(self) -> float:
        seen: set[int] = set()
        total = 0.0
        for root in self.roots:
            try:
                process = psutil.Process(root)
                members = [process, *process.children(recursive=True)]
            except psutil.Error:
                continue
            for member in members:
                if member.pid in seen:
                    continue
                seen.add(member.pid)
                try:
                    times = member.cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def start(self) -> None:
        self._start = self.total()

    def since_start(self) -> float:
        return max(0.0, self.total() - self._start)
