"""Running a :class:`~billing_sync.topology.layout.Layout` under ``supervisord``.

supervisord restarts a program that exits (``autorestart``), with a growing delay while it
keeps failing to start (``startretries``), and then gives up on it (state FATAL). This
module starts supervisord, reads the programs' states through its XML-RPC interface
(supervisord.org, "XML-RPC API"), starts a FATAL program again after a doubling delay, and
says what happened. It never reports a crash as success: supervisord dying is an error,
and its orphaned programs are stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import xmlrpc.client
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from billing_sync.private_files import private_dir, touch_private
from billing_sync.topology.layout import Layout

#: A FATAL program is started again after this, doubling up to FATAL_RETRY_MAX_SECONDS.
FATAL_RETRY_FIRST_SECONDS = 10.0
FATAL_RETRY_MAX_SECONDS = 300.0


@dataclass(frozen=True)
class ProgramState:
    name: str
    state: str  # RUNNING, STARTING, BACKOFF, EXITED, FATAL, STOPPED, ...
    pid: int
    exit_status: int
    description: str
    started_at: float = 0.0  # epoch seconds


#: A program started this long after supervisord itself was restarted: health says so
#: for this many seconds (``serve.restart_alert_seconds``).
RECENT_RESTART_SECONDS = 60.0


@dataclass(frozen=True)
class ProgramTrouble:
    """A program of ``serve`` not RUNNING (``down``), or restarted by supervisord lately."""

    program: str
    down: bool
    text: str


def program_reasons(
    layout: Layout, *, now: float | None = None, recent_seconds: float = RECENT_RESTART_SECONDS
) -> list[ProgramTrouble]:
    """For ``billing-sync health`` when ``serve`` runs in this state folder: each program
    not RUNNING, or restarted by supervisord within ``recent_seconds``."""
    return program_troubles(layout, now=now, recent_seconds=recent_seconds)[0]


def program_troubles(
    layout: Layout,
    *,
    now: float | None = None,
    recent_seconds: float = RECENT_RESTART_SECONDS,
    seen: dict[str, float] | None = None,
) -> tuple[list[ProgramTrouble], dict[str, float]]:
    """:func:`program_reasons`, and each program's start time. ``seen``: the start times
    an earlier look returned (the alert sensor keeps them in its cursor): a program started
    since counts as restarted even if ``recent_seconds`` have passed, so a restart between
    two slow ticks still alerts once."""
    if not layout.socket.exists():
        return [], {}
    now = time.time() if now is None else now
    states = Supervised(layout, {}, cwd=layout.state_dir).states()
    if not states:
        return [
            ProgramTrouble(
                "supervisord", True, f"serve: supervisord does not answer on {layout.socket}"
            )
        ], dict(seen or {})
    pidfile = layout.folder / "supervisord.pid"
    booted = pidfile.stat().st_mtime if pidfile.exists() else 0.0
    found = []
    for name, state in sorted(states.items()):
        if state.state != "RUNNING":
            found.append(
                ProgramTrouble(name, True, f"serve: {name} is {state.state} ({state.description})")
            )
        elif state.started_at > booted + 15 and (
            now - state.started_at < recent_seconds
            or (seen is not None and seen.get(name) != state.started_at)
        ):
            ago = now - state.started_at
            found.append(
                ProgramTrouble(
                    name, False, f"serve: {name} restarted by supervisord {ago:.0f} s ago"
                )
            )
    return found, {name: state.started_at for name, state in states.items()}


@dataclass
class _Retry:
    delay: float = FATAL_RETRY_FIRST_SECONDS
    at: float = 0.0


@dataclass
class Supervised:
    """supervisord running ``layout``'s programs with ``env`` (which carries the secrets:
    the config files never do)."""

    layout: Layout
    env: Mapping[str, str]
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    _pids: dict[str, int] = field(default_factory=dict)
    _retries: dict[str, _Retry] = field(default_factory=dict)

    def write_files(self) -> None:
        private_dir(self.layout.folder)
        private_dir(self.layout.logs)
        touch_private(self.layout.workspace).write_text(self.layout.workspace_yaml())
        touch_private(self.layout.supervisor_conf).write_text(
            self.layout.supervisor_ini(cwd=self.cwd)
        )

    def start(self) -> None:
        self.write_files()
        self.layout.socket.unlink(missing_ok=True)  # a stale socket from a killed supervisord
        out = touch_private(self.layout.logs / "supervisord.out").open("ab")
        self.process = subprocess.Popen(
            [str(self.layout.bin_dir / "supervisord"), "-c", str(self.layout.supervisor_conf)],
            env=dict(self.env),
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.layout.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def states(self) -> dict[str, ProgramState]:
        """Every program's state; empty while supervisord's socket is not up."""
        try:
            infos = self._rpc().getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            return {}
        return {
            info["name"]: ProgramState(
                info["name"], info["statename"], int(info["pid"]), int(info["exitstatus"]),
                str(info.get("description", "")), float(info.get("start") or 0.0),
            )
            for info in infos
        }  # fmt: skip

    def pid(self, name: str) -> int:
        state = self.states().get(name)
        return state.pid if state else 0

    def wait_running(self, timeout: float) -> bool:
        """Until every program is RUNNING (past its start seconds), or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.process is None or self.alive()):
            found = self.states()
            if found and all(s.state == "RUNNING" for s in found.values()):
                return True
            time.sleep(0.5)
        return False

    def watch(self, now: float | None = None) -> list[str]:
        """One look: what changed since the last (a program restarted), and FATAL programs
        started again when their delay has passed. Returns lines to print."""
        now = time.monotonic() if now is None else now
        said = []
        for name, state in self.states().items():
            before = self._pids.get(name)
            if state.pid and before and state.pid != before:
                said.append(f"{name} restarted by supervisord (pid {before} -> {state.pid})")
            if state.pid:
                self._pids[name] = state.pid
            if state.state == "RUNNING" and name in self._retries and state.pid:
                self._retries.pop(name)
            if state.state == "FATAL":
                retry = self._retries.setdefault(name, _Retry(at=now + FATAL_RETRY_FIRST_SECONDS))
                if now >= retry.at:
                    said.append(f"{name} FATAL ({state.description}): starting it again")
                    try:
                        self._rpc().startProcess(name, False)
                    except (OSError, xmlrpc.client.Error) as error:
                        said.append(f"{name}: start refused: {error}")
                    retry.delay = min(retry.delay * 2, FATAL_RETRY_MAX_SECONDS)
                    retry.at = now + retry.delay
        return said

    def stop(self, timeout: float = 60.0) -> int:
        """Stop supervisord (it stops its programs first); 0 when it stopped cleanly."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.kill_orphans()
        return 0 if process.returncode in (0, -signal.SIGTERM) else 1

    def kill_orphans(self) -> None:
        """Programs left behind by a supervisord that died (each is its own process group)."""
        for pid in self._pids.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self._pids.clear()
