"""The processes of one machine's deployment and the files that start them: the workspace
that points the daemon and webserver at the code server, and ``supervisord``'s config.

Secrets never enter these files: ``supervisord`` hands its own environment (set by
``billing-sync serve`` from the caller's) to every program.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from billing_sync.config import Settings

#: The checkout (or installed tree) holding dagster.yaml, dagster.postgres.yaml and deploy/.
REPO_ROOT = Path(__file__).resolve().parents[2]
LOCATION_NAME = "billing_sync"
DEFINITIONS_MODULE = "billing_sync.definitions"
#: A program that dies within this many seconds of starting failed to start: supervisord
#: retries it with a delay one second longer each time (its backoff), up to
#: :data:`START_RETRIES` times, then marks it FATAL (the serve loop retries FATAL later).
START_SECONDS = 5
START_RETRIES = 10


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]


@dataclass(frozen=True)
class Layout:
    """Where everything of one ``serve`` lives: all under ``<state_dir>/serve`` and
    ``<state_dir>/logs``; the Dagster instance in ``<state_dir>/dagster``."""

    state_dir: Path
    code_server_port: int
    webserver_host: str
    webserver_port: int
    metrics_host: str
    metrics_port: int
    webserver: bool = True
    bin_dir: Path = Path(sys.executable).parent

    @classmethod
    def from_settings(cls, settings: Settings, *, webserver: bool = True) -> Layout:
        serve = settings.serve
        return cls(
            state_dir=settings.state_dir.resolve(),
            code_server_port=serve.code_server_port,
            webserver_host=serve.webserver_host,
            webserver_port=serve.webserver_port,
            metrics_host=serve.metrics_host,
            metrics_port=serve.metrics_port,
            webserver=webserver,
        )

    @property
    def folder(self) -> Path:
        return self.state_dir / "serve"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster"

    @property
    def workspace(self) -> Path:
        return self.folder / "workspace.yaml"

    @property
    def supervisor_conf(self) -> Path:
        return self.folder / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.folder / "supervisor.sock"

    def programs(self) -> list[Program]:
        """The code server first: the daemon and the webserver load code from it."""
        dagster = str(self.bin_dir / "dagster")
        found = [
            Program(
                "code_server",
                [
                    dagster,
                    "code-server",
                    "start",
                    "-m",
                    DEFINITIONS_MODULE,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.code_server_port),
                    "--location-name",
                    LOCATION_NAME,
                ],
            ),
            Program(
                "daemon", [str(self.bin_dir / "dagster-daemon"), "run", "-w", str(self.workspace)]
            ),
        ]
        if self.webserver:
            found.append(
                Program(
                    "webserver",
                    [
                        str(self.bin_dir / "dagster-webserver"),
                        "-w",
                        str(self.workspace),
                        "-h",
                        self.webserver_host,
                        "-p",
                        str(self.webserver_port),
                    ],
                )
            )
        if self.metrics_port:
            found.append(
                Program(
                    "metrics",
                    [
                        str(self.bin_dir / "python"),
                        "-m",
                        "billing_sync.cli",
                        "metrics",
                        "--host",
                        self.metrics_host,
                        "--port",
                        str(self.metrics_port),
                    ],
                )
            )
        return found

    def workspace_yaml(self) -> str:
        """Dagster's workspace: the code location is the gRPC server, not loaded in process
        (docs.dagster.io, "Workspace files": ``grpc_server``)."""
        location = {"host": "127.0.0.1", "port": self.code_server_port,
                    "location_name": LOCATION_NAME}  # fmt: skip
        return yaml.safe_dump({"load_from": [{"grpc_server": location}]}, sort_keys=False)

    def supervisor_ini(self, *, cwd: Path) -> str:
        """supervisord's configuration (supervisord.org, "Configuration File"): in the
        foreground, its socket private to the user, each program restarted when it exits,
        its process group stopped and killed with it, its output in ``logs/<name>.log``."""
        lines = [
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            "",
            "[supervisord]",
            "nodaemon=true",
            f"logfile={self.logs / 'supervisord.log'}",
            "logfile_maxbytes=10MB",
            f"pidfile={self.folder / 'supervisord.pid'}",
            f"childlogdir={self.logs}",
            f"directory={cwd}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket}",
        ]
        for priority, program in enumerate(self.programs(), start=1):
            lines += [
                "",
                f"[program:{program.name}]",
                "command=" + " ".join(_quoted(part) for part in program.command),
                f"directory={cwd}",
                f"priority={priority * 10}",
                "autostart=true",
                "autorestart=true",
                f"startsecs={START_SECONDS}",
                f"startretries={START_RETRIES}",
                "stopsignal=TERM",
                "stopwaitsecs=20",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={self.logs / (program.name + '.log')}",
                "stdout_logfile_maxbytes=20MB",
                "stdout_logfile_backups=3",
            ]
        return "\n".join(lines) + "\n"


def _quoted(part: str) -> str:
    """supervisord splits ``command`` like a shell (shlex): quote what has spaces.

    >>> _quoted("/opt/my venv/bin/dagster")
    '"/opt/my venv/bin/dagster"'
    """
    if any(ch.isspace() or ch in "\"'%" for ch in part):
        return '"' + part.replace("%", "%%").replace('"', '\\"') + '"'
    return part
