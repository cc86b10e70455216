"""The ``billing-sync`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from billing_sync.config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    if args.state_dir:
        return load_settings(path=args.config, state_dir=args.state_dir)
    return load_settings(path=args.config)


def cmd_demo(args: argparse.Namespace) -> int:
    from billing_sync.demo import DemoOptions, run_demo

    options = DemoOptions(
        accounts=args.accounts, rate=args.rate, seconds=args.seconds, port=args.port
    )
    return run_demo(_settings(args), options)


def cmd_sync(args: argparse.Namespace) -> int:
    from billing_sync.sync import SyncEngine

    settings = _settings(args)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        while True:
            for batch in engine.sync_once(args.tier):
                lag = "-" if batch.lag_seconds is None else f"{batch.lag_seconds:.2f}s"
                print(
                    f"{batch.system}.{batch.table:<14} read {batch.rows_read:>6}  "
                    f"ins {batch.inserted:>6}  upd {batch.updated:>6}  del {batch.deleted:>5}  "
                    f"lag {lag:>8}  watermark {batch.cursor.change_ts if batch.cursor else '-'}"
                    f"{'  (cache: ' + batch.cache_error + ')' if batch.cache_error else ''}"
                )
            if args.once:
                return 0


def cmd_status(args: argparse.Namespace) -> int:
    from billing_sync.status import format_status, table_status
    from billing_sync.sync import SyncEngine

    with SyncEngine.from_settings(_settings(args)) as engine:
        engine.setup()
        print(format_status(table_status(engine)))
    return 0


def cmd_pause(args: argparse.Namespace, *, pause: bool) -> int:
    settings = _settings(args)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if pause:
        settings.pause_file.touch()
    else:
        settings.pause_file.unlink(missing_ok=True)
    print("paused" if pause else "resumed")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="billing-sync", description=__doc__)
    root.add_argument("--config", type=Path, help="settings YAML (default $BILLING_SYNC_CONFIG)")
    root.add_argument(
        "--state-dir",
        type=Path,
        help="where the embedded PostgreSQL, cache and Dagster state live "
        "(default $BILLING_SYNC_STATE_DIR or .billing-sync)",
    )
    root.add_argument("-v", "--verbose", action="store_true")
    sub = root.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="a simulated biller under a live workload, synced by Dagster"
    )
    demo.add_argument(
        "--seconds", type=float, help="run headless for N seconds, drain, check parity and exit"
    )
    demo.add_argument("--accounts", type=int, default=2_000, help="seed scale (default 2000)")
    demo.add_argument(
        "--rate", type=float, default=200.0, help="workload changed rows per second (default 200)"
    )
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    demo.set_defaults(func=cmd_demo)

    sync = sub.add_parser("sync", help="micro-batches without Dagster (for debugging)")
    sync.add_argument("--once", action="store_true", help="one micro-batch, then exit")
    sync.add_argument("--tier", choices=["priority", "standard", "bulk"])
    sync.set_defaults(func=cmd_sync)

    status = sub.add_parser("status", help="per table: watermark, lag, rows")
    status.set_defaults(func=cmd_status)

    pause = sub.add_parser("pause", help="sensors start no run; runs stop after their batch")
    pause.set_defaults(func=lambda a: cmd_pause(a, pause=True))
    resume = sub.add_parser("resume", help="undo pause")
    resume.set_defaults(func=lambda a: cmd_pause(a, pause=False))
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ConfigError as error:
        print(f"billing-sync: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.verbose:
            raise
        print(f"billing-sync: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
