"""``billing-sync feed``: the change-event relays (issue 16, docs/change-events.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

import psycopg

from billing_sync.config import Settings
from billing_sync.feed import store
from billing_sync.feed.relay import run_relay
from billing_sync.feed.sinks import SinkConfigError
from billing_sync.feed.tail import events
from billing_sync.postgres import resolve_database_urls

SettingsFor = Callable[[argparse.Namespace], Settings]


def status_lines(settings: Settings, lags: list[store.SinkLag]) -> list[str]:
    """Per sink: its published offset, lag in events and seconds (configured or not).

    >>> lag = store.SinkLag("bus", "nats", 41, 3, 1.5, None)
    >>> print("\\n".join(status_lines(Settings(), [lag])))
    sink  kind  published  lag events  lag s  state
    bus   nats         41           3    1.5  registered, not in feed.sinks
    """
    registered = {lag.sink: lag for lag in lags}
    rows = [("sink", "kind", "published", "lag events", "lag s", "state")]
    for name in sorted({*settings.feed.sinks, *registered}):
        lag = registered.get(name)
        if lag is None:
            kind = settings.feed.sinks[name].kind
            rows.append((name, kind, "-", "-", "-", "not started (no relay has run)"))
            continue
        late = lag.seconds > settings.feed.lag_sla_seconds
        state = (
            "registered, not in feed.sinks"
            if name not in settings.feed.sinks
            else ("BEHIND" if late else "ok")
        )
        rows.append(
            (name, lag.kind, str(lag.published_id), str(lag.events), f"{lag.seconds:.1f}", state)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 3, 4}
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def cmd_status(args: argparse.Namespace, settings_for: SettingsFor) -> int:
    settings = settings_for(args)
    url = resolve_database_urls(settings).warehouse
    with psycopg.connect(url, autocommit=True) as conn:
        lags = store.lags(conn)
    lines = status_lines(settings, lags)
    print("\n".join(lines) if len(lines) > 1 else "no feed sink configured (feed.sinks)")
    return 0


def _sink_name(settings: Settings, given: str | None) -> str:
    if given is not None:
        if given not in settings.feed.sinks:
            raise SinkConfigError(
                f"no feed sink named {given!r} (feed.sinks has {sorted(settings.feed.sinks)})"
            )
        return given
    if not settings.feed.sinks:
        raise SinkConfigError("no feed sink configured (feed.sinks)")
    return sorted(settings.feed.sinks)[0]


def cmd_tail(args: argparse.Namespace, settings_for: SettingsFor) -> int:
    settings = settings_for(args)
    name = _sink_name(settings, args.sink)

    async def follow() -> None:
        shown = 0
        found = events(
            name,
            settings.feed.sinks[name],
            args.entity,
            from_start=args.from_start,
            idle_seconds=args.idle_seconds,
        )
        async for event in found:
            print(json.dumps(event, separators=(",", ":")), flush=True)
            shown += 1
            if args.count and shown >= args.count:
                return

    asyncio.run(follow())
    return 0


def cmd_relay(args: argparse.Namespace, settings_for: SettingsFor) -> int:
    settings = settings_for(args)
    name = _sink_name(settings, args.sink)
    url = resolve_database_urls(settings).warehouse
    tally = run_relay(url, name, settings.feed, seconds=args.seconds)
    print(f"feed sink {name!r}: published {tally.published} events, {tally.failures} failures")
    return 0


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], settings_for: SettingsFor
) -> None:
    feed = sub.add_parser("feed", help="change events on Redis Streams / NATS JetStream")
    commands = feed.add_subparsers(dest="feed_command", required=True)
    status = commands.add_parser("status", help="per sink: published offset, lag")
    status.set_defaults(func=lambda args: cmd_status(args, settings_for))
    tail = commands.add_parser("tail", help="print an entity's events as they arrive")
    tail.add_argument("entity")
    tail.add_argument("--sink", help="a name from feed.sinks (default: the first)")
    tail.add_argument("--from-start", action="store_true", help="every event the sink holds")
    tail.add_argument("--count", type=int, default=0, help="stop after this many")
    tail.add_argument("--idle-seconds", type=float, help="stop once none came for this long")
    tail.set_defaults(func=lambda args: cmd_tail(args, settings_for))
    relay = commands.add_parser("relay", help="run one sink's relay here (Dagster runs it too)")
    relay.add_argument("sink", nargs="?")
    relay.add_argument("--seconds", type=float, help="stop after this long")
    relay.set_defaults(func=lambda args: cmd_relay(args, settings_for))
