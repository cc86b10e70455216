"""A local HTTP server that records the JSON bodies POSTed to it (the alert webhook)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # epoch seconds each body of ``bodies`` arrived
        self.fail_next = 0  # answer this many requests with 500
        self.url = ""

    def of_kind(self, kind: str, status: str | None = None) -> list[dict[str, Any]]:
        return [
            body
            for body in self.bodies
            if body.get("kind") == kind and (status is None or body.get("status") == status)
        ]


@contextmanager
def webhook_server() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            if recorder.fail_next:
                recorder.fail_next -= 1
                self.send_response(500)
            else:
                recorder.arrived.append(time.time())
                recorder.bodies.append(body)
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
