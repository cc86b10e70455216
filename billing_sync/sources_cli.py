"""``billing-sync grants`` and ``billing-sync catalog init``: a source's minimal read-only
grants (and the cursor indexes it lacks), and a draft catalog from its reflected schema."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from billing_sync.config import ConfigError, Settings, load_catalogs
from billing_sync.postgres import resolve_database_urls
from billing_sync.secrets import mask_error, mask_secrets
from billing_sync.source.advice import (
    DEFAULT_CAPTURE_USER,
    connected,
    draft,
    grants_text,
    missing_cursor_indexes,
    source_adapter,
)


def cmd_grants(args: argparse.Namespace, settings: Settings) -> int:
    catalogs = {catalog.system: catalog for catalog in load_catalogs(settings)}
    catalog = catalogs.get(args.system)
    if catalog is None:
        raise ConfigError(f"no catalog for system {args.system!r}; known: {sorted(catalogs)}")
    url = resolve_database_urls(settings).source_for(args.system)
    adapter = source_adapter(url, timezone=catalog.timezone)
    user = args.user or adapter.config.username or DEFAULT_CAPTURE_USER
    print(f"-- {adapter.name} source of {args.system} ({mask_secrets(url)}): read-only grants")
    for statement in grants_text(adapter, catalog, user):
        print(f"{statement};")
    try:
        with connected(adapter) as connection:
            warnings = missing_cursor_indexes(adapter, connection, catalog)
    except DBAPIError as error:
        reason = mask_error(error.orig or error)
        print(f"-- cursor indexes not checked: cannot reach the source ({reason})")
        return 0
    for warning in warnings:
        print(f"-- {warning}")
    return 0


def cmd_catalog_init(args: argparse.Namespace) -> int:
    adapter = source_adapter(args.url)
    with connected(adapter) as connection:
        text = draft(adapter, connection, system=args.system, schema=args.schema,
                     timezone=args.timezone)  # fmt: skip
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(f"wrote {args.out}: review every '#' note before use", file=sys.stderr)
    else:
        print(text)
    return 0


def add_parser(sub: Any, settings: Callable[[argparse.Namespace], Settings]) -> None:
    grants = sub.add_parser(
        "grants", help="the minimal read-only grants for a system's source, and missing indexes"
    )
    grants.add_argument("--system", required=True)
    grants.add_argument("--user", help="the capture user (default: the source URL's user)")
    grants.set_defaults(func=lambda args: cmd_grants(args, settings(args)))
    catalog = sub.add_parser("catalog", help="catalog tools")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    init = catalog_sub.add_parser("init", help="a draft catalog from a source's reflected schema")
    init.add_argument("--system", required=True)
    init.add_argument("--url", required=True, help="SQLAlchemy URL of the source")
    init.add_argument("--schema", help="schema (MySQL: database) to read; default the URL's")
    init.add_argument("--timezone", default="UTC", help="zone of the biller's local stamps")
    init.add_argument("--out", help="write the draft here instead of stdout")
    init.set_defaults(func=cmd_catalog_init)
