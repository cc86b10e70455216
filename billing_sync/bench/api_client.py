"""The account API's load generator, run in its own process by ``billing-sync bench api``:
``python -m billing_sync.bench.api_client PLAN.json`` prints one JSON result.

Open loop: each of the plan's clients (one API key each) has its requests scheduled at
``clients / rate`` seconds apart, phase-shifted; latency is measured from the scheduled
time, so a server that falls behind is charged for the queue it causes (no coordinated
omission), not only for the requests that got through.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

# After the measuring window, requests still queued in the client for longer than this are
# not sent: counted as status -1 ("dropped"), so an overloaded server ends the run.
DRAIN_SECONDS = 5.0


async def _client(
    http: httpx.AsyncClient,
    key: str,
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
    headers = {"Authorization": f"Bearer {key}"}
    while scheduled < until:
        if time.perf_counter() > until + DRAIN_SECONDS:  # far behind: the rest is dropped
            statuses[-1] = statuses.get(-1, 0) + int((until - scheduled) / interval) + 1
            return
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            answer = await http.get(rng.choice(paths), headers=headers)
            status = answer.status_code
        except httpx.HTTPError:
            status = 0
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1
        scheduled += interval


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    keys: list[str] = plan["keys"]
    rate, seconds = float(plan["rate"]), float(plan["seconds"])
    interval = len(keys) / rate
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=len(keys), max_keepalive_connections=len(keys))
    async with httpx.AsyncClient(base_url=plan["url"], limits=limits, timeout=10) as http:
        await http.get("/healthz")
        start = time.perf_counter() + 0.5
        until = start + seconds
        cpu_before = time.process_time()
        rngs = [random.Random(plan.get("seed", 1) * 1000 + n) for n in range(len(keys))]
        await asyncio.gather(
            *(
                _client(http, key, plan["paths"], start=start, interval=interval, until=until,
                        rng=rng, latencies=latencies, statuses=statuses)
                for key, rng in zip(keys, rngs, strict=True)
            )
        )  # fmt: skip
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
