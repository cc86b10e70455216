"""``billing-sync api``: serve the account API; ``billing-sync api key``: issue a key."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from billing_sync.api.config import DEFAULT_HOST, DEFAULT_PORT, api_config
from billing_sync.api.keys import SCOPES, entry_line, new_key
from billing_sync.config import Settings
from billing_sync.postgres import resolve_database_urls
from billing_sync.private_files import touch_private

SettingsFor = Callable[[argparse.Namespace], Settings]


def add_parser(sub: argparse._SubParsersAction, settings_for: SettingsFor) -> None:  # type: ignore[type-arg]
    api = sub.add_parser("api", help="serve the read-only account API (FastAPI on uvicorn)")
    api.add_argument(
        "--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST} (this machine only)"
    )
    api.add_argument("--port", type=int, default=DEFAULT_PORT)
    api.add_argument("--keys-file", type=Path, help="API keys file (lines: id sha256:<hex> scopes)")
    api.add_argument(
        "--pool-size", type=int, default=10, help="warehouse connections at most, per worker"
    )
    api.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="uvicorn worker processes (default 1: one core's worth; see docs/api.md)",
    )
    api.set_defaults(func=lambda args: cmd_api(args, settings_for))
    actions = api.add_subparsers(dest="api_command")
    key = actions.add_parser("key", help="issue a key: prints it once, stores only its hash")
    key.add_argument("key_id", help="a name for the key (letters, digits, '-'), shown in logs")
    key.add_argument(
        "--scopes", default=",".join(SCOPES), help=f"comma-separated: {', '.join(SCOPES)}"
    )
    key.add_argument("--keys-file", type=Path, help="append the hashed entry to this file (0600)")
    key.set_defaults(func=cmd_key)


def _workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"--workers {value}: between 1 and 64")
    return value


def cmd_key(args: argparse.Namespace) -> int:
    key = new_key(args.key_id)
    line = entry_line(args.key_id, key, [s.strip() for s in args.scopes.split(",") if s.strip()])
    if args.keys_file:
        if not args.keys_file.exists():
            touch_private(args.keys_file)
        with args.keys_file.open("a") as out:
            out.write(line + "\n")
        print(f"stored the hash of key {args.key_id} in {args.keys_file}", file=sys.stderr)
    else:
        print(f"entry for the keys file or BILLING_SYNC_API_KEYS:\n  {line}", file=sys.stderr)
    print(key)  # the only time the key is shown
    return 0


def cmd_api(args: argparse.Namespace, settings_for: SettingsFor) -> int:
    # why: uvicorn and the app's stack load only for this command
    from billing_sync.api.serve import serve

    settings = settings_for(args)
    # Resolved once here (the cursor key file created if missing) and handed to every
    # worker: they share the keys and the cursor key.
    config = api_config(
        settings,
        resolve_database_urls(settings).warehouse,
        keys_file=args.keys_file,
        pool_size=args.pool_size,
    )
    if not config.keys.keys:
        print(
            "billing-sync api: no API key configured: every data request gets a 401"
            " (billing-sync api key NAME --keys-file FILE)",
            file=sys.stderr,
        )
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    print(f"billing-sync api: http://{args.host}:{args.port}/docs{workers}", file=sys.stderr)
    serve(config, host=args.host, port=args.port, workers=args.workers)
    return 0
