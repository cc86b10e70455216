"""What only the Dagster instance knows, for ``billing-sync health`` and the metrics: the
daemon's heartbeats and runs failing one after another (read through the instance's
public API, as plain figures for :mod:`billing_sync.engine.health`)."""

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from billing_sync.config import Settings
from billing_sync.defs.alerts import run_error
from billing_sync.defs.instance import instance_env, open_instance
from billing_sync.defs.sensors import IN_FLIGHT
from billing_sync.engine.health import REPEATED_FAILURES, FailingJob

#: Runs read to find jobs failing one after another (newest first).
RUNS_READ = 50


def dagster_home(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    """``$DAGSTER_HOME`` when set (a Kubernetes pod, a systemd unit), else the state
    folder's ``dagster/`` (``billing-sync serve`` and the demo)."""
    env = os.environ if env is None else env
    return Path(env["DAGSTER_HOME"]) if env.get("DAGSTER_HOME") else settings.state_dir / "dagster"


@dataclass(frozen=True)
class InstanceFigures:
    heartbeat_ages: dict[str, float]  # daemon type -> seconds since its latest heartbeat
    required_daemons: list[str]
    failing_jobs: list[FailingJob]


def read_figures(home: Path, *, now: float | None = None) -> InstanceFigures:
    now = time.time() if now is None else now
    with open_instance(home, instance_env()) as instance:
        beats = instance.get_daemon_heartbeats()
        ages = {daemon: now - beat.timestamp for daemon, beat in beats.items()}
        required = list(instance.get_required_daemon_types())
        return InstanceFigures(ages, required, failing_jobs(instance))


def failing_jobs(instance: dg.DagsterInstance) -> list[FailingJob]:
    """Jobs whose latest finished runs failed :data:`REPEATED_FAILURES` times or more in a
    row (runs still in flight are skipped: they have not said yet)."""
    streak: dict[str, int] = {}
    settled: set[str] = set()
    newest_failure: dict[str, str] = {}
    for record in instance.get_run_records(limit=RUNS_READ):
        run = record.dagster_run
        if run.job_name in settled or run.status in IN_FLIGHT:
            continue
        if run.status == dg.DagsterRunStatus.FAILURE:
            streak[run.job_name] = streak.get(run.job_name, 0) + 1
            newest_failure.setdefault(run.job_name, run.run_id)
        else:
            settled.add(run.job_name)
    return [
        FailingJob(job, count, run_error(instance, newest_failure[job]))
        for job, count in sorted(streak.items())
        if count >= REPEATED_FAILURES
    ]


def failed_runs_by_job(home: Path) -> dict[str, int]:
    """Failed runs per job still in the instance (retention prunes old ones)."""
    with open_instance(home, instance_env()) as instance:
        counts: dict[str, int] = {}
        for record in instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=10_000
        ):
            job = record.dagster_run.job_name
            counts[job] = counts.get(job, 0) + 1
        return counts
