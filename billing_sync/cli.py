"""The ``billing-sync`` command."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from billing_sync.analyst_cli import add_parsers as add_analyst_parsers
from billing_sync.analyst_cli import server_note
from billing_sync.api.cli import add_parser as add_api_parser
from billing_sync.bench.cli import add_bench_parser
from billing_sync.config import (
    TIERS,
    ConfigError,
    Settings,
    SourceCatalog,
    TableMapping,
    load_settings,
)
from billing_sync.demo.mariadb import NoMariaDB
from billing_sync.demo.run import DemoOptions, run_demo
from billing_sync.engine.batch import TableBatch
from billing_sync.engine.progress import Progress
from billing_sync.engine.status_report import format_status, status_report
from billing_sync.engine.sync import SyncEngine
from billing_sync.feed_cli import add_parser as add_feed_parser
from billing_sync.load.zone_upgrade import (
    cache_has_local_timestamps,
    set_cache_aside,
)
from billing_sync.load.zone_upgrade import upgrade as upgrade_timestamps
from billing_sync.ops_cli import add_parsers as add_ops_parsers
from billing_sync.private_files import private_dir, touch_private
from billing_sync.quarantine_cli import add_parser as add_quarantine_parser
from billing_sync.reconcile.verify import run_verify
from billing_sync.secrets import install_log_masking, mask_error, mask_secrets
from billing_sync.serve.dictionary_doc import DOC_PATH, render_shipped, write_doc
from billing_sync.source.advice import connected, missing_cursor_indexes, source_adapter
from billing_sync.sources_cli import add_parser as add_sources_parser
from billing_sync.state_settings import default_settings_file
from billing_sync.tier_failures import TablesFailed


def _settings(args: argparse.Namespace) -> Settings:
    """``--config``, else ``$BILLING_SYNC_CONFIG``, else the settings the demo left in the
    state folder (:mod:`billing_sync.state_settings`); then the environment, the options."""
    path = args.config or default_settings_file(args.state_dir)
    if args.state_dir:
        return load_settings(path=path, state_dir=args.state_dir)
    return load_settings(path=path)


def cmd_demo(args: argparse.Namespace) -> int:
    options = DemoOptions(
        accounts=args.accounts,
        rate=args.rate,
        seconds=args.seconds,
        port=args.port,
        systems=tuple(name.strip() for name in args.systems.split(",") if name.strip()),
        source_engine=args.source_engine,
        mariadb_url=args.mariadb_url,
    )
    try:
        return run_demo(_settings(args), options)
    except NoMariaDB as error:
        print(error, file=sys.stderr)
        return 2


def cmd_sync(args: argparse.Namespace) -> int:
    """The engine's loop: every tier's poll interval apart unless rows wait; stops when
    paused (``billing-sync pause``); ``--once``: one micro-batch."""
    settings = _settings(args)
    tiers = [args.tier] if args.tier else list(TIERS)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        try:
            engine.run(
                tier=args.tier,
                batches=1 if args.once else sys.maxsize,
                poll_interval=min(settings.tier(tier).poll_interval_seconds for tier in tiers),
                on_batch=_print_batches,
                # The other tables synced (printed by on_batch); the failed ones are retried.
                on_failure=lambda failed: print(f"error: {failed}", file=sys.stderr),
                should_stop=settings.pause_file.exists,
            )
        except TablesFailed:
            return 1
    return 0


def _print_batches(batches: list[TableBatch]) -> None:
    for batch in batches:
        lag = "-" if batch.lag_seconds is None else f"{batch.lag_seconds:.2f}s"
        print(
            f"{batch.system}.{batch.table:<14} read {batch.rows_read:>6}  "
            f"ins {batch.inserted:>6}  upd {batch.updated:>6}  del {batch.deleted:>5}  "
            f"lag {lag:>8}  watermark {batch.watermark_label or '-'}"
            f"{'  (cache: ' + batch.cache_error + ')' if batch.cache_error else ''}"
        )


def cmd_check(args: argparse.Namespace) -> int:
    """Check every catalog against its source's reflected schema; say what each maps."""
    with SyncEngine.from_settings(_settings(args)) as engine:
        engine.check_sources()  # a ConfigError names the file, table and column
        for catalog in engine.catalogs:
            for mapping in catalog.tables:
                print(
                    f"ok  {catalog.system}.{mapping.table:<16} -> {mapping.entity:<18}"
                    f" {len(mapping.columns):>3} columns  tier {mapping.tier}"
                )
        for warning in cursor_index_warnings(engine):
            print(f"warn {warning}")
    return 0


def cursor_index_warnings(engine: SyncEngine) -> list[str]:
    """Cursors no index leads with, each with the CREATE INDEX a DBA would run."""
    warnings: list[str] = []
    for catalog in engine.catalogs:
        adapter = source_adapter(engine.urls.source_for(catalog.system), timezone=catalog.timezone)
        try:
            with connected(adapter) as connection:
                warnings.extend(missing_cursor_indexes(adapter, connection, catalog))
        except DBAPIError as error:
            reason = mask_error(error.orig or error)
            warnings.append(f"{catalog.system}: cursor indexes not checked ({reason})")
    return warnings


def cmd_status(args: argparse.Namespace) -> int:
    """Reads only: no HMAC key needed, the cache is not opened for writing."""
    settings = _settings(args)
    with SyncEngine.from_settings(settings, reading=True) as engine:
        engine.warehouse.setup(engine.catalogs)
        report = status_report(engine)
    print(json.dumps(report.as_json(), indent=2) if args.json else format_status(report))
    return 0


def _table(engine: SyncEngine, name: str) -> tuple[SourceCatalog, TableMapping]:
    """``SYSTEM.TABLE`` or a bare ``TABLE`` when only one system has it."""
    system, _, table = name.rpartition(".")
    found = [
        (catalog, mapping)
        for catalog, mapping in engine.tables()
        if mapping.table.upper() == table.upper() and system in ("", catalog.system)
    ]
    if len(found) != 1:
        known = ", ".join(f"{c.system}.{m.table}" for c, m in engine.tables())
        raise ConfigError(f"no single table {name!r} in the catalogs; known: {known}")
    return found[0]


def cmd_backfill(args: argparse.Namespace) -> int:
    with SyncEngine.from_settings(_settings(args)) as engine:
        engine.setup()
        catalog, mapping = _table(engine, args.table)
        progress = Progress(f"backfill {catalog.system}.{mapping.table}", total=None)

        def show(batch: TableBatch) -> None:
            if batch.snapshot_progress:
                done, total = batch.snapshot_progress
                progress.total = total
                progress.update(done)

        rows = engine.backfill(catalog, mapping, where=args.where, on_chunk=show)
        progress.finish()
        print(f"backfilled {rows} rows of {catalog.system}.{mapping.table}")
    return 0


def cmd_rebase(args: argparse.Namespace) -> int:
    with SyncEngine.from_settings(_settings(args)) as engine:
        engine.setup()
        catalog, mapping = _table(engine, args.table)
        engine.rebase(catalog, mapping)
        print(
            f"{catalog.system}.{mapping.table}: watermark cleared; the next sync re-reads the "
            "table by snapshot and hands over to the tail"
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with SyncEngine.from_settings(_settings(args)) as engine:
        engine.setup()
        return run_verify(
            engine, args.tables, repair=args.repair, max_delete_fraction=args.max_delete_fraction
        )


def cmd_upgrade_timestamps(args: argparse.Namespace) -> int:
    """Convert a warehouse from before one-zone timestamps (docs/operations.md): each row
    with its own system's catalog zone; the cache is set aside and rebuilt."""
    settings = _settings(args)
    with SyncEngine.from_settings(settings) as engine:
        statements = upgrade_timestamps(engine.warehouse.conn, engine.catalogs)
        for statement in statements:
            print(f"{statement};")
        cache = settings.resolved_cache_path
        if cache_has_local_timestamps(cache, engine.catalogs):
            print(f"cache {cache} set aside as {set_cache_aside(cache).name}")
        engine.setup()
        engine.catch_up_cache()
    zones = ", ".join(f"{c.system} {c.timezone}" for c in engine.catalogs)
    print(f"timestamps are UTC instants ({len(statements)} tables converted; zones: {zones})")
    return 0


def cmd_dictionary(args: argparse.Namespace) -> int:
    """Print docs/data-dictionary.md as the shipped catalogs and suites make it; with
    ``--write``, rewrite the file."""
    if not args.write:
        print(render_shipped(), end="")
        return 0
    print(f"{DOC_PATH}: {'rewritten' if write_doc() else 'up to date'}")
    return 0


def cmd_pause(args: argparse.Namespace, *, pause: bool) -> int:
    settings = _settings(args)
    private_dir(settings.state_dir)
    if pause:
        touch_private(settings.pause_file)
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
        "--systems",
        default="icoms,amdocs",
        help="simulated billers to run and sync, comma-separated (default icoms,amdocs)",
    )
    demo.add_argument(
        "--rate", type=float, default=200.0, help="workload changed rows per second (default 200)"
    )
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    demo.add_argument(
        "--source-engine",
        choices=("postgresql", "mariadb"),
        default="postgresql",
        help="where the ICOMS biller runs: the embedded PostgreSQL (default) or a MariaDB server",
    )
    demo.add_argument(
        "--mariadb-url",
        help="with --source-engine mariadb: the server (default $BILLING_SYNC_DEMO_MARIADB_URL,"
        " else mysql+pymysql://root@127.0.0.1:3306/billing_sync_demo)",
    )
    demo.set_defaults(func=cmd_demo)

    sync = sub.add_parser("sync", help="micro-batches without Dagster (for debugging)")
    sync.add_argument("--once", action="store_true", help="one micro-batch, then exit")
    sync.add_argument("--tier", choices=["priority", "standard", "bulk"])
    sync.set_defaults(func=cmd_sync)

    check = sub.add_parser(
        "check", help="check the catalogs against the billers' schemas (columns, types, keys)"
    )
    check.set_defaults(func=cmd_check)

    status = sub.add_parser("status", help="per table: lag against the SLA, rows; the pipeline")
    status.add_argument("--json", action="store_true", help="the same as one JSON document")
    status.set_defaults(func=cmd_status)

    backfill = sub.add_parser(
        "backfill", help="re-load a table by primary-key ranges (resumable, beside the tail)"
    )
    backfill.add_argument("table", help="SYSTEM.TABLE or TABLE, e.g. icoms.PAYMENT")
    backfill.add_argument(
        "--where", help='a filter in the source\'s SQL, e.g. "\\"SITE_ID\\" = \'001\'"'
    )
    backfill.set_defaults(func=cmd_backfill)

    rebase = sub.add_parser(
        "rebase", help="after a source restore: forget the watermark, snapshot again"
    )
    rebase.add_argument("table", help="SYSTEM.TABLE or TABLE")
    rebase.set_defaults(func=cmd_rebase)

    verify = sub.add_parser(
        "verify", help="prove parity: hash source vs warehouse by key ranges, and the cache"
    )
    verify.add_argument("tables", nargs="*", metavar="TABLE", help="SYSTEM.TABLE, TABLE or entity")
    verify.add_argument(
        "--repair", action="store_true", help="fix what differs; flag hard deletes deleted"
    )
    verify.add_argument(
        "--max-delete-fraction", type=_fraction, default=0.05, metavar="F",
        help="refuse to flag more than F of a table's rows deleted in one run (default 0.05)",
    )  # fmt: skip
    verify.set_defaults(func=cmd_verify)

    add_quarantine_parser(sub, _settings)
    add_analyst_parsers(sub, _settings)

    add_sources_parser(sub, _settings)
    add_ops_parsers(sub, _settings)
    add_api_parser(sub, _settings)
    add_feed_parser(sub, _settings)

    pause = sub.add_parser("pause", help="sensors start no run; runs stop after their batch")
    pause.set_defaults(func=lambda a: cmd_pause(a, pause=True))
    resume = sub.add_parser("resume", help="undo pause")
    resume.set_defaults(func=lambda a: cmd_pause(a, pause=False))

    upgrade = sub.add_parser(
        "upgrade-timestamps",
        help="convert biller-local timestamp columns of an earlier warehouse to timestamptz",
    )
    upgrade.set_defaults(func=cmd_upgrade_timestamps)

    dictionary = sub.add_parser(
        "dictionary", help="the data dictionary (docs/data-dictionary.md) from the catalogs"
    )
    dictionary.add_argument("--write", action="store_true", help="rewrite the file")
    dictionary.set_defaults(func=cmd_dictionary)

    add_bench_parser(sub)
    return root


def _fraction(text: str) -> float:
    """A number from 0 to 1 (the Dagster parity check's config has the same bounds)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction from 0 to 1")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_masking()
    state_dir = args.state_dir or Path(os.environ.get("BILLING_SYNC_STATE_DIR") or ".billing-sync")
    note = server_note(state_dir) if args.command not in ("demo", "stop") else lambda: None
    try:
        return int(args.func(args))
    except ConfigError as error:
        print(f"billing-sync: {mask_secrets(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.verbose:  # the traceback, masked like every other message
            print(mask_secrets(traceback.format_exc()), file=sys.stderr, end="")
        print(f"billing-sync: {mask_error(error)}", file=sys.stderr)
        return 1
    finally:
        note()


if __name__ == "__main__":
    sys.exit(main())
