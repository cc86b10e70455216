"""The ``billing-sync bench`` subcommand: its options, and the call into the runner."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from billing_sync.bench import SCENARIO_NAMES
from billing_sync.bench.api import ApiBenchOptions, run_api_bench
from billing_sync.bench.api import main_exit_code as api_exit_code
from billing_sync.bench.context import BenchOptions
from billing_sync.bench.runner import main_exit_code, run_bench
from billing_sync.bench.tail_peers import CONTENDERS
from billing_sync.config import load_settings


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def _contenders(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(names) - set(CONTENDERS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown contender {', '.join(unknown) or '(none given)'}: choose among "
            + ", ".join(CONTENDERS)
        )
    return names


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def add_bench_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser(
        "bench",
        help="benchmark scenarios against dlt, Sling and the COPY floor, with JSON reports",
        description="Scenarios: snapshot (one table, all contenders), tail (a change rate "
        "through the Dagster daemon, freshness of marker rows), shapes (a run per micro-batch "
        "vs long-lived runs), scale (1x, 4x, 16x data), hot (per-row staleness of rows "
        "rewritten every 0.3 s), burst (a bill run's 2M rows in 5 min: the priority tier's "
        "p99 meanwhile, the drain, parity), all. Reports go to "
        "<state-dir>/bench/reports/<scenario>.json.",
    )
    # ``api``: the account API's load test (bench/api.py), not part of ``all``.
    bench.add_argument("scenario", choices=(*SCENARIO_NAMES, "api"), nargs="+")
    bench.add_argument("--quick", action="store_true", help="small sizes: a few minutes for all")
    bench.add_argument("--rows", type=int, help="snapshot table rows (default 1M, quick 200k)")
    bench.add_argument(
        "--rates", type=_floats, help="tail rates, e.g. 3500,10000 (capacity: the first)"
    )
    bench.add_argument("--seconds", type=float, help="tail window per rate (and capacity's)")
    bench.add_argument(
        "--shards", type=_ints, help="capacity: the tiers' shard counts to compare, e.g. 1,2"
    )
    bench.add_argument("--accounts", type=int, help="tail data: seeded accounts")
    bench.add_argument("--repeat", type=int, help="snapshot runs per contender (median)")
    bench.add_argument("--no-peers", action="store_true", help="snapshot without dlt and Sling")
    bench.add_argument("--output", type=Path, help="folder for the JSON reports")
    bench.add_argument(
        "--workers", type=int, help="api: the API's uvicorn workers (default 2, the cores)"
    )
    bench.add_argument(
        "--contenders",
        type=_contenders,
        help="tail-peers: which contenders run, e.g. billing-sync,sling (default: all of "
        "sling, dlt, dlt-lag, dlt-fresh, billing-sync)",
    )
    bench.add_argument(
        "--source-engine",
        choices=("postgresql", "mariadb"),
        default="postgresql",
        help="snapshot, tail: mariadb measures the ICOMS biller on MariaDB too, beside"
        " PostgreSQL, in the same run and report",
    )
    bench.add_argument(
        "--mariadb-url",
        default=BenchOptions.mariadb_url,
        help="the MariaDB/MySQL server for --source-engine mariadb (a user that may create"
        " databases; default %(default)s)",
    )
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:

    settings = (
        load_settings(path=args.config, state_dir=args.state_dir)
        if args.state_dir
        else load_settings(path=args.config)
    )
    options = BenchOptions.for_run(
        quick=args.quick,
        snapshot_rows=args.rows,
        rates=args.rates,
        tail_seconds=args.seconds,
        tail_accounts=args.accounts,
        capacity_rate=args.rates[0] if args.rates else None,
        capacity_seconds=args.seconds,
        capacity_shards=args.shards,
        repeat=args.repeat,
        peers=False if args.no_peers else None,
        output=args.output,
        peers_tail_contenders=args.contenders,
        source_engines=("postgresql", "mariadb")
        if args.source_engine == "mariadb"
        else ("postgresql",),
        mariadb_url=args.mariadb_url,
    )
    scenarios = [name for name in args.scenario if name != "api"]
    code = 0
    if scenarios:
        code = main_exit_code(run_bench(scenarios, options, state_dir=settings.state_dir))
    if "api" in args.scenario:
        api_options = ApiBenchOptions.quick() if args.quick else ApiBenchOptions()
        if args.workers:
            api_options = replace(api_options, workers=args.workers)
        if args.accounts or args.seconds or args.output or args.rates:
            api_options = replace(
                api_options,
                accounts=args.accounts or api_options.accounts,
                seconds=args.seconds or api_options.seconds,
                rate=args.rates[0] if args.rates else api_options.rate,  # requests/s
                output=args.output,
            )
        code = max(code, api_exit_code(run_api_bench(settings.state_dir, api_options)))
    return code
