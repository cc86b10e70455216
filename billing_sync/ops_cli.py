"""Commands for running it in production (issue 18): ``serve`` (Dagster's processes under
supervisord) and ``health`` for outside monitors."""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from billing_sync.config import ConfigError, Settings
from billing_sync.engine.health import (
    DEGRADED,
    DOWN,
    OK,
    Reason,
    daemon_reasons,
    engine_reasons,
    exit_code,
    failing_job_reasons,
)
from billing_sync.engine.sync import SyncEngine
from billing_sync.secrets import mask_error
from billing_sync.state_settings import default_settings_file
from billing_sync.topology.layout import REPO_ROOT, Layout
from billing_sync.topology.supervise import Supervised, program_reasons

SettingsFor = Callable[[argparse.Namespace], Settings]

#: libpq's connect timeout for a probe: an unreachable host must not hang the monitor.
PROBE_CONNECT_TIMEOUT_SECONDS = "5"


def health_reasons(settings: Settings, dagster_home: Path | None = None) -> list[Reason]:
    """Every reason the pipeline is degraded or down (empty: healthy)."""
    os.environ.setdefault("PGCONNECT_TIMEOUT", PROBE_CONNECT_TIMEOUT_SECONDS)
    reasons = [
        Reason(DOWN if trouble.down else DEGRADED, trouble.text)
        for trouble in program_reasons(
            Layout.from_settings(settings), recent_seconds=settings.serve.restart_alert_seconds
        )
    ]
    try:
        with SyncEngine.from_settings(settings, reading=True) as engine:
            reasons += engine_reasons(engine)
    except ConfigError:
        raise
    except Exception as error:  # the warehouse (or its embedded server) cannot be reached
        reasons.append(Reason(DOWN, f"warehouse: unreachable: {mask_error(error)}"))
    # why: dagster costs 0.7 s to import; the other commands of this module do without it
    from billing_sync.defs.instance_health import dagster_home as default_home
    from billing_sync.defs.instance_health import read_figures

    home = dagster_home or default_home(settings)
    if not (home / "dagster.yaml").exists():
        return [*reasons, Reason(DOWN, f"dagster: no instance in {home} (dagster.yaml missing)")]
    try:
        figures = read_figures(home)
    except Exception as error:  # the instance storage (PostgreSQL) is down
        return [
            *reasons,
            Reason(DOWN, f"dagster: instance storage unreachable: {mask_error(error)}"),
        ]
    reasons += daemon_reasons(figures.heartbeat_ages, figures.required_daemons)
    reasons += failing_job_reasons(figures.failing_jobs)
    return reasons


def cmd_health(args: argparse.Namespace, settings_for: SettingsFor) -> int:
    reasons = sorted(health_reasons(settings_for(args), args.dagster_home), reverse=True)
    for reason in reasons:
        print(reason.line())
    code = exit_code(reasons)
    if code == OK:
        print("OK daemon heartbeat, tiers within their SLA, runs, warehouse and billers")
    return code


def serve_environment(settings: Settings, layout: Layout, config: Path | None) -> dict[str, str]:
    """The caller's environment for supervisord and its programs, with the instance and the
    settings file named, so every program reads the settings this command read."""
    # why: dagster costs 0.7 s to import; health and the other commands do without it
    from billing_sync.defs.instance import instance_config, instance_env, prepare_instance

    prepare_instance(layout.dagster_home, config=instance_config(REPO_ROOT))
    env = {
        **os.environ,
        **instance_env(),
        "DAGSTER_HOME": str(layout.dagster_home),
        "BILLING_SYNC_STATE_DIR": str(layout.state_dir),
    }
    if config is not None:
        env["BILLING_SYNC_CONFIG"] = str(config.resolve())
    return env


def _interrupt_on_termination() -> None:
    """SIGTERM and SIGHUP (systemd, a terminal closing) stop it like Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def supervise_until_stopped(supervised: Supervised, *, poll_seconds: float = 2.0) -> int:
    """Watch until Ctrl-C or SIGTERM (then stop everything: 0 when it stopped cleanly), or
    until supervisord dies on its own (1: a crash is never a success)."""
    try:
        while supervised.alive():
            for line in supervised.watch():
                print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        print("stopping", flush=True)
        return supervised.stop()
    code = supervised.process.returncode if supervised.process else None
    supervised.kill_orphans()
    print(
        f"supervisord exited unexpectedly ({code}); its programs were stopped; see"
        f" {supervised.layout.logs}",
        flush=True,
    )
    return 1


def cmd_serve(args: argparse.Namespace, settings_for: SettingsFor) -> int:
    settings = settings_for(args)
    config = args.config or default_settings_file(args.state_dir)
    layout = Layout.from_settings(settings, webserver=not args.no_webserver)
    supervised = Supervised(layout, serve_environment(settings, layout, config), cwd=REPO_ROOT)
    _interrupt_on_termination()
    supervised.start()
    print(f"supervisord: {layout.supervisor_conf}; logs: {layout.logs}", flush=True)
    for program in layout.programs():
        print(f"  {program.name}: {' '.join(program.command)}", flush=True)
    if layout.webserver:
        print(f"Dagster UI: http://{layout.webserver_host}:{layout.webserver_port}", flush=True)
    if layout.metrics_port:
        print(f"metrics: http://{layout.metrics_host}:{layout.metrics_port}/metrics", flush=True)
    return supervise_until_stopped(supervised)


def cmd_metrics(args: argparse.Namespace, settings_for: SettingsFor) -> int:
    """Serve Prometheus metrics until stopped (a program of ``serve``)."""
    settings = settings_for(args)
    # why: the collector reads the Dagster instance (dagster costs 0.7 s to import)
    from prometheus_client import CollectorRegistry, start_http_server

    from billing_sync.defs.instance_health import dagster_home
    from billing_sync.metrics.collector import BillingSyncCollector

    registry = CollectorRegistry(auto_describe=False)  # nothing is read before a scrape
    registry.register(BillingSyncCollector(settings, args.dagster_home or dagster_home(settings)))
    host = args.host or settings.serve.metrics_host
    port = args.port or settings.serve.metrics_port
    server, _ = start_http_server(port, addr=host, registry=registry)
    print(f"metrics: http://{host}:{port}/metrics", flush=True)
    _interrupt_on_termination()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], settings_for: SettingsFor
) -> None:
    health = sub.add_parser(
        "health",
        help="for monitors: exit 0 ok, 1 degraded, 2 down; one line per reason",
    )
    health.add_argument(
        "--dagster-home",
        type=Path,
        help="the Dagster instance folder (default $DAGSTER_HOME, else <state_dir>/dagster)",
    )
    health.set_defaults(func=lambda args: cmd_health(args, settings_for))

    serve = sub.add_parser(
        "serve",
        help="run Dagster's code server, daemon and webserver and the metrics exporter as"
        " separate processes under supervisord, restarted when they die",
    )
    serve.add_argument("--no-webserver", action="store_true", help="no Dagster UI (headless)")
    serve.set_defaults(func=lambda args: cmd_serve(args, settings_for))

    metrics = sub.add_parser("metrics", help="serve Prometheus metrics (started by serve)")
    metrics.add_argument("--host", help="listen address (default serve.metrics_host)")
    metrics.add_argument("--port", type=int, help="listen port (default serve.metrics_port)")
    metrics.add_argument(
        "--dagster-home", type=Path, help="default $DAGSTER_HOME, else <state_dir>/dagster"
    )
    metrics.set_defaults(func=lambda args: cmd_metrics(args, settings_for))
