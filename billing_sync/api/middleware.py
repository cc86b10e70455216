"""Plain ASGI middleware (no per-request task, unlike Starlette's BaseHTTPMiddleware):

- the URL's path and query must decode as UTF-8, else a 400 problem before any route runs
  (the server replaces bad bytes with U+FFFD, which would then reach a query);
- one JSON line per request on the ``billing_sync.api.access`` logger: method, route
  template (not the path: it holds account numbers), status, duration, the key id that
  authenticated (never the key), and the pid of the worker process that answered.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing_sync.api.problems import problem_raw

access_log = logging.getLogger("billing_sync.api.access")
LOG_SLOT = "billing_sync.api.log"  # a dict in the scope that routes fill (key id)
_PID = os.getpid()  # a worker is a spawned process: its own import, its own pid


def _utf8(raw: bytes) -> bool:
    try:
        unquote_to_bytes(raw.decode("latin-1")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class ApiMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        slot: dict[str, Any] = {}
        scope[LOG_SLOT] = slot
        status = 500
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if not (_utf8(raw_path) and _utf8(scope.get("query_string", b""))):
            status, headers, body = problem_raw(
                400, "not-utf8", "the request's path or query string is not UTF-8"
            )
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            self._log(scope, slot, status, started)
            return

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._log(scope, slot, status, started)

    @staticmethod
    def _log(scope: Scope, slot: dict[str, Any], status: int, started: float) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        route = scope.get("route")
        access_log.info(
            json.dumps(
                {
                    "ts": round(time.time(), 3),
                    "method": scope.get("method"),
                    "route": getattr(route, "path", None) or "unmatched",
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "key_id": slot.get("key_id"),
                    "pid": _PID,
                }
            )
        )
