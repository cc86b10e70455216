"""``billing-sync bench api``: requests per second and p50/p99 latency of the account API's
account and activity endpoints at 200 concurrent keys, with the sync tiers running.

Three processes, as in production: the API (``billing-sync api --workers 2`` under
uvicorn: a supervisor and 2 worker processes), the load generator
(:mod:`billing_sync.bench.api_client`), and this one, which runs the simulated billers'
workload and the sync of every tier while the load runs.
Target on 2 cores: p99 under 25 ms for ``GET /v1/accounts/...`` at 500 requests/s.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from billing_sync.api.keys import ACCOUNTS_READ, entry_line, new_key
from billing_sync.bench import bench_hmac_key
from billing_sync.bench.machine import describe, machine_info
from billing_sync.bench.report import write_json
from billing_sync.config import load_settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import drop_database, ensure_database, server_url
from billing_sync.private_files import private_dir, touch_private
from billing_sync.simulator import Workload, create_schema, seed

BILLERS = ("icoms", "amdocs")
TARGET_P99_MS = 25.0


@dataclass(frozen=True)
class ApiBenchOptions:
    accounts: int = 2000  # per biller
    clients: int = 200  # concurrent keys
    rate: float = 500.0  # requests per second, per endpoint phase
    seconds: float = 30.0
    workload_rate: float = 200.0  # changed source rows per second while measuring
    workers: int = 2  # the API's uvicorn workers: one per core of the 2-core target
    output: Path | None = None

    @classmethod
    def quick(cls) -> ApiBenchOptions:
        return cls(accounts=300, seconds=10.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start (exit {process.poll()})") from None
            time.sleep(0.2)


def _cpu_seconds(pid: int) -> float:
    """CPU of the API: its process and its workers (children)."""
    process = psutil.Process(pid)
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        try:
            times = each.cpu_times()
        except psutil.Error:  # a worker that just exited
            continue
        total += times.user + times.system
    return total


def _account_paths(warehouse: str) -> list[str]:
    with psycopg.connect(warehouse) as conn:
        rows = conn.execute(
            "SELECT source_system, site_id, account_number FROM serve.account_360"
        ).fetchall()
    return [f"/v1/accounts/{system}/{site}:{number}" for system, site, number in rows]


def run_api_bench(state_dir: Path, options: ApiBenchOptions) -> dict[str, Any]:
    work = private_dir(state_dir / "bench-api")
    env = dict(os.environ)
    env.setdefault("BILLING_SYNC_HMAC_KEY", bench_hmac_key())
    base = server_url(load_settings(state_dir=state_dir, env=env), env)
    source = ensure_database(base, "bench_api_source")
    warehouse = ensure_database(base, "bench_api_warehouse")
    for url in (source, warehouse):  # fresh data every run
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "DROP SCHEMA IF EXISTS icoms, amdocs, billing, billing_sync, serve CASCADE"
            )
    settings = load_settings(
        env=env, state_dir=work, source_url=source, warehouse_url=warehouse,
        systems=list(BILLERS), read_copy_interval_seconds=0,
    )  # fmt: skip
    started = time.monotonic()
    with psycopg.connect(source, autocommit=True) as conn:
        for system in BILLERS:
            create_schema(conn, system=system)
            seed(conn, accounts=options.accounts, system=system)
    keys = [new_key(f"agent-{n}") for n in range(options.clients)]
    keys_file = touch_private(work / "api-keys")
    keys_file.write_text(
        "".join(entry_line(f"agent-{n}", k, [ACCOUNTS_READ]) + "\n" for n, k in enumerate(keys))
    )
    results: dict[str, Any] = {}
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=datetime.now(UTC), timeout=600)
        prepared = time.monotonic() - started
        accounts = _account_paths(warehouse)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        api_env = {
            **env,
            "BILLING_SYNC_STATE_DIR": str(work),
            "BILLING_SYNC_SOURCE_URL": source,
            "BILLING_SYNC_WAREHOUSE_URL": warehouse,
            "BILLING_SYNC_SYSTEMS": ",".join(BILLERS),
        }
        log = (work / "api-access.log").open("wb")
        api = subprocess.Popen(
            [sys.executable, "-m", "billing_sync.cli", "api", "--port", str(port),
             "--keys-file", str(keys_file), "--workers", str(options.workers)],
            env=api_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stop = threading.Event()
        sync = threading.Thread(
            target=engine.run,
            kwargs={
                "tier": None,
                "batches": 10**9,
                "poll_interval": 0.5,
                "should_stop": stop.is_set,
            },
            daemon=True,
        )
        try:
            _wait_healthy(url, api)
            with Workload(source, rate=options.workload_rate, systems=BILLERS, seed=17):
                sync.start()
                for name, paths in (
                    ("account", accounts),
                    ("activity", [f"{p}/activity?limit=50" for p in accounts]),
                ):
                    before = _cpu_seconds(api.pid)
                    results[name] = _load(url, keys, paths, options, work / f"plan-{name}.json")
                    # CPU the API process spent per answered request: what a request costs
                    # whatever else the machine runs (latency depends on the neighbours).
                    answered = max(1, results[name]["statuses"].get("200", 0))
                    spent = _cpu_seconds(api.pid) - before
                    results[name]["api_cpu_ms_per_request"] = round(1000 * spent / answered, 2)
                    results[name]["load_average"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            stop.set()
            sync.join(timeout=120)
            api.terminate()
            api.wait(timeout=30)
            log.close()
    machine = machine_info(base)
    report = {
        "scenario": "api",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
        "accounts_served": len(accounts),
        "prepare_seconds": round(prepared, 1),
        "target": {"endpoint": "account", "rate": 500, "p99_ms": TARGET_P99_MS},
        "results": results,
    }
    output = options.output or state_dir / "bench"
    write_json(private_dir(output) / "api.json", report)
    print(f"machine: {describe(machine)}, API workers: {options.workers}")
    for name, result in results.items():
        print(
            f"{name:9s} {result['rps']:7.1f} req/s  p50 {result['p50_ms']} ms  p99"
            f" {result['p99_ms']} ms  API CPU {result['api_cpu_ms_per_request']} ms/request"
            f"  generator CPU {result.get('client_cpu_ms_per_request')} ms/request"
            f"  statuses {result['statuses']}  load {result['load_average']}"
        )
    print(target_line(report))
    print(f"report: {output / 'api.json'}")
    drop_database(base, "bench_api_source")
    drop_database(base, "bench_api_warehouse")
    return report


def _load(
    url: str, keys: list[str], paths: list[str], options: ApiBenchOptions, plan_path: Path
) -> dict[str, Any]:
    plan = {"url": url, "keys": keys, "paths": paths, "rate": options.rate,
            "seconds": options.seconds, "seed": 7}  # fmt: skip
    touch_private(plan_path)  # it holds the keys
    plan_path.write_text(json.dumps(plan))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "billing_sync.bench.api_client", str(plan_path)],
            check=True, capture_output=True, timeout=options.seconds + 60,
        )  # fmt: skip
    finally:
        plan_path.unlink(missing_ok=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def target_line(report: dict[str, Any]) -> str:
    """The figure the bench is for, beside its target, on one line.

    >>> line = target_line({"options": {"rate": 500.0}, "results": {"account": {
    ...     "p99_ms": 12.5, "statuses": {"200": 5000}}}})
    >>> line.removeprefix("TARGET GET /v1/accounts/...: ")
    'p99 12.5 ms at 500/s scheduled (target: p99 < 25 ms at 500/s): MET'
    """
    account = report["results"].get("account")
    rate = report["options"]["rate"]
    if account is None or account["p99_ms"] is None:
        return "TARGET GET /v1/accounts/...: not measured"
    answered = set(account["statuses"]) == {"200"}
    met = rate >= 500 and answered and account["p99_ms"] < TARGET_P99_MS
    verdict = "MET" if met else "NOT MET" if answered else "NOT MET (requests failed or dropped)"
    return (
        f"TARGET GET /v1/accounts/...: p99 {account['p99_ms']} ms at {rate:g}/s scheduled"
        f" (target: p99 < {TARGET_P99_MS:g} ms at 500/s): {verdict}"
    )


def main_exit_code(report: dict[str, Any]) -> int:
    """0 when every request got a 200 (the speed target is reported, not enforced)."""
    statuses = [r["statuses"] for r in report["results"].values()]
    return 0 if all(set(s) == {"200"} for s in statuses) else 1
