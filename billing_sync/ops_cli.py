"""Commands for running it in production (issue 18): ``health`` for outside monitors."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from billing_sync.config import ConfigError, Settings
from billing_sync.engine.health import (
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

SettingsFor = Callable[[argparse.Namespace], Settings]

#: libpq's connect timeout for a probe: an unreachable host must not hang the monitor.
PROBE_CONNECT_TIMEOUT_SECONDS = "5"


def health_reasons(settings: Settings, dagster_home: Path | None = None) -> list[Reason]:
    """Every reason the pipeline is degraded or down (empty: healthy)."""
    os.environ.setdefault("PGCONNECT_TIMEOUT", PROBE_CONNECT_TIMEOUT_SECONDS)
    reasons: list[Reason] = []
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
