"""``billing-sync demo``: a simulated biller under a live workload, synced by Dagster.

Dagster runs as ``billing-sync serve`` runs it (:mod:`billing_sync.topology`): a code
server, the daemon and (unless headless) the webserver and the metrics exporter, each its
own process under supervisord. State lives under the state folder (``.billing-sync/`` by
default): the embedded PostgreSQL (``postgres/``), the DuckDB cache (``cache.duckdb``),
the Dagster instance (``dagster/``), the processes' logs (``logs/``).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg
from pydantic import SecretStr
from sqlalchemy.engine import URL, make_url

from billing_sync.config import TIERS, Settings, load_catalogs
from billing_sync.demo import mariadb
from billing_sync.demo.console import TierLag, demo_commands, format_parity, freshness
from billing_sync.demo.feed import DemoRelays, feed_settings_yaml, with_demo_feed
from billing_sync.engine.sync import SyncEngine, caught_up
from billing_sync.entities import STATE_SCHEMA
from billing_sync.postgres import (
    DatabaseUrls,
    resolve_database_urls,
    stop_embedded_server,
    uses_embedded_server,
)
from billing_sync.private_files import private_dir, touch_private
from billing_sync.reconcile.compare import TableParity, compare_all
from billing_sync.reconcile.deletes import apply_hard_deletes
from billing_sync.simulator import create_schema, seed_if_empty
from billing_sync.state_settings import write_state_settings
from billing_sync.topology.layout import REPO_ROOT, Layout
from billing_sync.topology.supervise import Supervised


@dataclass(frozen=True)
class DemoOptions:
    accounts: int = 2_000
    rate: float = 200.0
    seconds: float | None = None
    systems: tuple[str, ...] = ("icoms", "amdocs")
    port: int = 3000
    drain_timeout: float = 90.0
    source_engine: str = "postgresql"  # or "mariadb": the ICOMS biller on MariaDB
    mariadb_url: str | None = None  # --mariadb-url, else $BILLING_SYNC_DEMO_MARIADB_URL

    def mariadb(self) -> URL | None:
        """The MariaDB server's URL when the ICOMS biller runs there."""
        if self.source_engine != "mariadb":
            return None
        return mariadb.demo_url(self.mariadb_url)


def say(message: str) -> None:
    print(message, flush=True)


def with_demo_hmac_key(settings: Settings) -> Settings:
    """Settings with an HMAC key for protected columns: the environment's when set, else
    one generated once into the state folder (mode 0600), so tokens stay stable across
    demo runs. A production deployment sets ``BILLING_SYNC_HMAC_KEY`` itself.
    """
    if settings.hmac_key is not None:
        return settings
    path = settings.state_dir / "demo-hmac.key"
    if not path.exists():
        private_dir(settings.state_dir)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return settings.model_copy(
        update={"hmac_key": SecretStr(path.read_text().strip()), "hmac_key_file": path}
    )


def prepare(settings: Settings, *, accounts: int) -> DatabaseUrls:
    """Databases, the simulated billers (seeded once) and the warehouse and cache tables."""
    private_dir(settings.state_dir)
    urls = resolve_database_urls(settings)
    for system in settings.systems:
        url = make_url(urls.source_for(system))
        if url.get_backend_name() in ("mysql", "mariadb"):
            seeded = mariadb.prepare_biller(url, accounts=accounts)
            if seeded:
                say(f"seeded the {system} biller on MariaDB ({url.render_as_string()})")
        else:
            with psycopg.connect(urls.source_for(system), autocommit=True) as conn:
                create_schema(conn, system=system)
                seeded = seed_if_empty(conn, accounts=accounts, system=system)
        if seeded:
            say(f"seeded the {system} biller: {sum(seeded.values()):,} rows ({_counts(seeded)})")
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        # The first load (a key-range snapshot) before the clock starts: the demo shows
        # the live tail, which is what Dagster's sensors and runs keep up.
        started = time.monotonic()
        engine.drain(until=_source_clock(urls.source, _mariadb_url(urls)), timeout=600)
        say(f"initial load done in {time.monotonic() - started:.1f}s")
    return urls


def _by_system(workload: mariadb.DemoWorkload) -> str:
    totals: dict[str, int] = {}
    for table, count in workload.counts().items():
        system = table.split(".")[0]
        totals[system] = totals.get(system, 0) + count
    return ", ".join(f"{system} {count:,}" for system, count in totals.items())


def _counts(rows: dict[str, int]) -> str:
    return ", ".join(f"{table} {count:,}" for table, count in rows.items())


def _mariadb_url(urls: DatabaseUrls) -> URL | None:
    hosted = [make_url(url) for url in urls.system_sources.values()]
    return next((url for url in hosted if url.get_backend_name() in ("mysql", "mariadb")), None)


def _source_clock(url: str, mariadb_url: URL | None = None) -> datetime:
    """The sources' clock, time-zone aware (each biller compares it in its own zone): the
    later of PostgreSQL's and the MariaDB server's when a biller runs there."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return mariadb.latest_clock(value, mariadb_url)


def dagster_environment(settings: Settings, urls: DatabaseUrls) -> dict[str, str]:
    # why: defs imports dagster (0.7 s): the CLI imports this module, only the demo needs it
    from billing_sync.defs.instance import instance_config, instance_env, prepare_instance

    home = (settings.state_dir / "dagster").resolve()
    prepare_instance(home, config=instance_config(REPO_ROOT))  # PostgreSQL if DAGSTER_PG_URL
    return {
        **os.environ,
        **instance_env(),
        "DAGSTER_HOME": str(home),
        "BILLING_SYNC_STATE_DIR": str(settings.state_dir.resolve()),
        "BILLING_SYNC_SOURCE_URL": urls.source,
        "BILLING_SYNC_SYSTEMS": ",".join(settings.systems),
        **{
            f"BILLING_SYNC_SOURCE_URL_{system.upper()}": url
            for system, url in urls.system_sources.items()
        },
        "BILLING_SYNC_WAREHOUSE_URL": urls.warehouse,
        "BILLING_SYNC_CACHE_PATH": str(settings.resolved_cache_path.resolve()),
        **({"BILLING_SYNC_CATALOG_DIR": str(settings.catalog_dir)} if settings.catalog_dir else {}),
        **(
            {"BILLING_SYNC_HMAC_KEY": settings.hmac_key.get_secret_value()}
            if settings.hmac_key
            else {}
        ),
    }


def stop_process_group(process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_caught_up(
    settings: Settings, warehouse_url: str, *, until: datetime, timeout: float
) -> float | None:
    """Seconds until every table's watermark is caught up to ``until``, or None on timeout.

    Each biller's watermarks hold its own local time: ``until`` is compared in each zone.
    """
    local = {catalog.system: catalog.local_time(until) for catalog in load_catalogs(settings)}
    started = time.monotonic()
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            rows = conn.execute(
                f"SELECT system, min(caught_up_to), bool_or(caught_up_to IS NULL)"
                f" FROM {STATE_SCHEMA}.watermark GROUP BY system"
            ).fetchall()
            # caught_up_to is exclusive: strictly past `until` (engine.sync.caught_up).
            reached = {system: caught_up(None if empty else low, local[system])
                       for system, low, empty in rows}  # fmt: skip
            if rows and all(reached.get(system, False) for system in local):
                return time.monotonic() - started
            time.sleep(0.5)
    return None


def wait_runs_finished(warehouse_url: str, settings: Settings, *, timeout: float) -> None:
    """After pausing, wait until no batch has committed for a couple of poll intervals."""
    quiet_for = 3.0
    deadline = time.monotonic() + timeout
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                f"SELECT coalesce(extract(epoch FROM clock_timestamp() - max(updated_at)), 1e9)"
                f" FROM {STATE_SCHEMA}.watermark"
            ).fetchone()
            if row and float(row[0]) > quiet_for:
                return
            time.sleep(0.5)


def parity(settings: Settings) -> list[TableParity]:
    with SyncEngine.from_settings(settings) as engine:
        return compare_all(engine)


def _interrupt_on_termination() -> None:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so Dagster and the workload are stopped too."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def free_port() -> int:
    """A port free now: the demo's code server must not collide with a ``serve`` or
    another demo on this machine (nobody connects to it but the daemon and webserver)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_layout(settings: Settings, options: DemoOptions, *, headless: bool) -> Layout:
    """``serve``'s layout; headless: the code server and the daemon only."""
    layout = Layout.from_settings(settings, webserver=not headless)
    return replace(
        layout,
        code_server_port=free_port(),
        webserver_port=options.port,
        metrics_port=0 if headless else layout.metrics_port,
    )


def run_demo(settings: Settings, options: DemoOptions) -> int:
    """Run the demo; headless for ``options.seconds`` when given. Returns the exit code."""
    settings = with_demo_hmac_key(settings).model_copy(update={"systems": list(options.systems)})
    server = options.mariadb()
    if server is not None:
        mariadb.require_server(server)
        hosted = mariadb.mariadb_systems(options.systems)
        if not hosted:
            say(f"--source-engine mariadb hosts {', '.join(mariadb.MARIADB_SYSTEMS)} only;"
                f" none of {', '.join(options.systems)} is")  # fmt: skip
            return 2
        settings = mariadb.with_mariadb(settings, server, hosted)
    # Change events go to NATS unless the settings name sinks (docs/change-events.md).
    settings, nats_server = with_demo_feed(settings)
    try:
        return _run_demo(settings, options)
    finally:
        if nats_server is not None:
            nats_server.stop()


def _run_demo(settings: Settings, options: DemoOptions) -> int:
    # Later commands in this state folder (status, sql, stop) find the systems and the key.
    write_state_settings(
        settings, hmac_key_file=settings.hmac_key_file, feed=feed_settings_yaml(settings)
    )
    settings.pause_file.unlink(missing_ok=True)
    _interrupt_on_termination()
    urls = prepare(settings, accounts=options.accounts)
    headless = options.seconds is not None
    layout = demo_layout(settings, options, headless=headless)
    dagster = Supervised(layout, dagster_environment(settings, urls), cwd=REPO_ROOT)
    workload = mariadb.DemoWorkload(
        postgres_url=urls.source,
        urls={system: urls.source_for(system) for system in options.systems},
        systems=options.systems,
        rate=options.rate,
        mariadb_url=options.mariadb(),
    )
    dagster.start()
    relays = DemoRelays(settings, urls.warehouse)
    try:
        relays.start()
        workload.start()
        announce(settings, urls, options, layout, headless=headless)
        lag = TierLag(settings, urls)
        if not run_workload(workload, dagster, seconds=options.seconds, lag=lag.line):
            return 2
        workload.stop()
        return finish_headless(settings, urls, dagster, options) if headless else 0
    finally:
        workload.stop()
        touch_private(settings.pause_file)
        relays.stop()
        dagster.stop()
        settings.pause_file.unlink(missing_ok=True)
        if uses_embedded_server(settings):
            stop_embedded_server(settings.state_dir / "postgres")


def announce(
    settings: Settings, urls: DatabaseUrls, options: DemoOptions, layout: Layout, *, headless: bool
) -> None:
    say(f"workload: {options.rate:.0f} changed rows/s into {' and '.join(options.systems)}")
    server = options.mariadb()
    if server is not None:
        hosted = ", ".join(mariadb.mariadb_systems(options.systems))
        say(f"source engines: {hosted} on MariaDB ({server.render_as_string()}),"
            " the others on PostgreSQL")  # fmt: skip
    programs = ", ".join(program.name for program in layout.programs())
    say(f"Dagster: {programs} under supervisord (logs: {layout.logs})")
    sinks = ", ".join(f"{n} ({s.kind})" for n, s in sorted(settings.feed.sinks.items()))
    say(f"change events: {sinks}; try `billing-sync feed status`, `feed tail account`")
    if not headless:
        say(f"Dagster UI:   http://127.0.0.1:{options.port}")
    if layout.metrics_port:
        say(f"metrics:      http://{layout.metrics_host}:{layout.metrics_port}/metrics")
    say(demo_commands(settings, urls))


def run_workload(
    workload: mariadb.DemoWorkload,
    dagster: Supervised,
    *,
    seconds: float | None,
    lag: Callable[[], str] = lambda: "",
) -> bool:
    """Until ``seconds`` pass (or Ctrl-C); False when supervisord died meanwhile (a program
    that dies is restarted by it, and said here)."""
    deadline = time.monotonic() + (seconds if seconds is not None else float("inf"))
    try:
        while time.monotonic() < deadline:
            if not dagster.alive():
                code = dagster.process.returncode if dagster.process else None
                say(f"supervisord exited unexpectedly ({code}); see {dagster.layout.logs}")
                return False
            for line in dagster.watch():
                say(f"  {time.strftime('%H:%M:%S')} {line}")
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            say(
                f"  {time.strftime('%H:%M:%S')} workload rows changed: {_by_system(workload)}"
                f"  {lag()}"
            )
    except KeyboardInterrupt:
        say("stopping")
    return True


def finish_headless(
    settings: Settings, urls: DatabaseUrls, dagster: Supervised, options: DemoOptions
) -> int:
    stopped_at = _source_clock(urls.source, options.mariadb())
    say("workload stopped; draining through Dagster")
    drained = wait_caught_up(
        settings, urls.warehouse, until=stopped_at, timeout=options.drain_timeout
    )
    say(
        f"Dagster drained in {drained:.1f}s"
        if drained is not None
        else f"Dagster did not drain within {options.drain_timeout:.0f}s; finishing in-process"
    )
    touch_private(settings.pause_file)
    wait_runs_finished(urls.warehouse, settings, timeout=30)
    dagster.stop()
    with SyncEngine.from_settings(settings) as engine:
        engine.drain(until=stopped_at, timeout=options.drain_timeout)
        for deletes in apply_hard_deletes(engine):
            say(
                f"{deletes.table}: {deletes.found} rows deleted from the source, "
                + (f"not flagged ({deletes.left_alone})" if deletes.left_alone
                   else f"{deletes.flagged} flagged _is_deleted")
            )  # fmt: skip
    results = parity(settings)
    say(format_parity(results))
    tiers = {
        (catalog.system, mapping.table): mapping.tier
        for catalog in load_catalogs(settings)
        for mapping in catalog.tables
    }
    lag = freshness(urls.warehouse, tiers)
    if lag:
        say("freshness (commit in source to visible in warehouse, per Dagster batch):")
        for tier in sorted(lag, key=TIERS.index):
            figures, sla = lag[tier], settings.tier(tier).freshness_sla_seconds
            say(
                f"  {tier:<9} {figures['batches']:>5.0f} batches  p50 {figures['p50']:.2f}s"
                f"  p95 {figures['p95']:.2f}s  p99 {figures['p99']:.2f}s"
                f"  max {figures['max']:.2f}s  (SLA {sla:.0f}s)"
            )
    else:
        say("freshness: no batch was committed by a Dagster run")
    equal = all(result.equal for result in results)
    say("PARITY: source, warehouse and cache are equal" if equal else "PARITY FAILED")
    return 0 if equal and lag else 1
