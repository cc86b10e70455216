"""The account API's load generator, run in its own process by ``billing-sync bench api``:
``python -m billing_sync.bench.api_client PLAN.json`` prints one JSON result.

Open loop: each of the plan's clients (one API key each) has its requests scheduled at
``clients / rate`` seconds apart, phase-shifted; latency is measured from the scheduled
time, so a server that falls behind is charged for the queue it causes (no coordinated
omission), not only for the requests that got through.

Each client is one keep-alive HTTP/1.1 connection spoken over asyncio streams, not httpx:
httpx cost the generator 4.4 ms of CPU per request (measured 2026-12-05), more than
twice the API's, so on 2 cores the generator could not send 500 requests/s and its own
queue became the measured latency. The API's answers here always carry Content-Length
(JSON bodies, never chunked).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 10.0


class Connection:
    """One keep-alive connection: GET a path, read the status and the body."""

    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (
            f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {key}\r\n\r\n"
        ).encode()
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> int:
        """The answer's status; 0 when there was none (refused, reset, timed out)."""
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                return await self._get(path)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            self.close()
            return 0

    async def _get(self, path: str) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise ValueError("an answer without Content-Length")
        length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
        await reader.readexactly(length)
        if b"\r\nconnection: close" in head:
            self.close()
        return status

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


# After the measuring window, requests still queued in the client for longer than this are
# not sent: counted as status -1 ("dropped"), so an overloaded server ends the run.
DRAIN_SECONDS = 5.0


async def _client(
    connection: Connection,
    paths: list[str],
    *,
    start: float,
    interval: float,
    until: float,
    rng: random.Random,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    scheduled = start + rng.random() * interval
    while scheduled < until:
        if time.perf_counter() > until + DRAIN_SECONDS:  # far behind: the rest is dropped
            statuses[-1] = statuses.get(-1, 0) + int((until - scheduled) / interval) + 1
            return
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        status = await connection.get(rng.choice(paths))
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1
        scheduled += interval


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    keys: list[str] = plan["keys"]
    rate, seconds = float(plan["rate"]), float(plan["seconds"])
    interval = len(keys) / rate
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connections = [Connection(plan["url"], key) for key in keys]
    if await connections[0].get("/healthz") != 200:
        raise RuntimeError(f"the API at {plan['url']} does not answer /healthz")
    start = time.perf_counter() + 0.5
    until = start + seconds
    cpu_before = time.process_time()
    rngs = [random.Random(plan.get("seed", 1) * 1000 + n) for n in range(len(keys))]
    try:
        await asyncio.gather(
            *(
                _client(connection, plan["paths"], start=start, interval=interval, until=until,
                        rng=rng, latencies=latencies, statuses=statuses)
                for connection, rng in zip(connections, rngs, strict=True)
            )
        )  # fmt: skip
    finally:
        for connection in connections:
            connection.close()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_before
    latencies.sort()

    def quantile(q: float) -> float | None:
        if not latencies:
            return None
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    # -1: dropped, 0: no answer (timeout, connection); latencies of answered requests only
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "max_ms": quantile(1.0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "scheduled": int(rate * seconds),
        # The generator's own CPU per request sent: when it cannot get that much CPU per
        # scheduled request, the latencies are the generator's queue, not the API's.
        "client_cpu_ms_per_request": round(1000 * cpu / max(1, len(latencies)), 2),
    }


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(run(plan))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
