"""``billing-sync quarantine``: list, explain and release quarantined rows (on-call)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from billing_sync.config import Settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.transform.protect import redact_text
from billing_sync.validate import quarantine, quarantine_ops
from billing_sync.validate.quarantine_ops import printable


def add_parser(sub: Any, settings: Callable[[argparse.Namespace], Settings]) -> None:
    """Register the ``quarantine`` command on the CLI's subparsers."""
    command = sub.add_parser("quarantine", help="list, explain and release quarantined rows")
    actions = command.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="quarantined rows, newest first")
    listing.add_argument("--entity", help="only this entity (e.g. payment)")
    listing.add_argument(
        "--status",
        choices=["open", "pending", "released", "unreleased", "all"],
        default="unreleased",
        help="which rows (default: unreleased, i.e. open and pending)",
    )
    listing.add_argument("--limit", type=int, default=50)

    explain = actions.add_parser("explain", help="what is wrong with a row, what releases it")
    explain.add_argument("entity")
    explain.add_argument("key", help="the row's source key, e.g. '001|42'")

    release = actions.add_parser(
        "release", help="load rows as they are (unvalidated) and mark them released"
    )
    release.add_argument("entity")
    release.add_argument("keys", nargs="*", metavar="KEY", help="source keys")
    release.add_argument("--all", action="store_true", help="every unreleased row of the entity")

    command.set_defaults(func=lambda args: run(args, settings(args)))


def run(args: argparse.Namespace, settings: Settings) -> int:

    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        conn = engine.warehouse.conn
        if args.action == "list":
            statuses = {
                "unreleased": (quarantine.OPEN, quarantine.PENDING),
                "all": quarantine.STATUSES,
            }.get(args.status, (args.status,))
            found = quarantine_ops.entries(
                conn, entity=args.entity, statuses=statuses, limit=args.limit
            )
            print(format_entries(found))
            return 0
        if args.action == "explain":
            found = quarantine_ops.entries(
                conn, entity=args.entity, key=args.key, statuses=quarantine.STATUSES, limit=1
            )
            if not found:
                print(f"no quarantined {args.entity} row with key {args.key!r}")
                return 1
            print(quarantine_ops.explain(found[0]))
            return 0
        if not args.keys and not args.all:
            print("name the keys to release, or --all")
            return 2
        engine.check_sources()  # the checked catalogs know which columns redact by default
        rows, batch = quarantine_ops.release(
            conn, engine.catalogs, entity=args.entity, keys=None if args.all else args.keys
        )
        print(
            f"released {rows} {args.entity} row(s) into the warehouse in batch {batch}"
            if rows
            else "nothing to release"
        )
        return 0 if rows else 1


def format_entries(entries: list[Any]) -> str:
    if not entries:
        return "the quarantine is empty"
    header = (
        f"{'entity':<15} {'source key':<24} {'status':<9} {'expectation':<58} "
        f"{'value':<16} {'batch':>7}  last seen"
    )
    lines = [header, "-" * len(header)]
    for e in entries:
        value = "" if e.offending_value is None else printable(redact_text(e.offending_value))
        lines.append(
            f"{printable(e.entity):<15} {printable(e.source_key):<24} {e.status:<9}"
            f" {printable(e.expectation)[:58]:<58} {value[:16]:<16}"
            f" {e.batch_id or '-'!s:>7}  {e.last_seen:%Y-%m-%d %H:%M:%S}"
        )
    return "\n".join(lines)
