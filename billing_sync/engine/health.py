"""``billing-sync health`` for outside monitors (Kubernetes probes, Nagios, cron): each
reason the pipeline is degraded or down, one line each, and an exit code (issue 18).

- down (2): the warehouse or a biller cannot be reached; the Dagster daemon's heartbeat is
  older than :data:`HEARTBEAT_LIMIT_SECONDS` (nothing starts runs or evaluates sensors).
- degraded (1): a tier with no successful batch within its SLA (its slowest table is
  behind by more than the SLA), a job whose latest finished run failed, sensors failing
  tick after tick.

This module holds the rules and what the warehouse and billers say; what only the Dagster
instance knows (heartbeats, consecutive failed runs) is read by
:mod:`billing_sync.defs.instance_health` and handed in as plain figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from billing_sync.alerts.conditions import Freshness
from billing_sync.config import TIERS
from billing_sync.engine import pipeline_record
from billing_sync.engine.monitor import table_freshness
from billing_sync.engine.sync import SyncEngine
from billing_sync.secrets import mask_error

OK, DEGRADED, DOWN = 0, 1, 2
LEVEL_NAMES = {OK: "OK", DEGRADED: "DEGRADED", DOWN: "DOWN"}
#: The daemon writes a heartbeat every few seconds (Dagster's default interval is 30 s at
#: most); older than this, no sensor ticks and no queued run starts.
HEARTBEAT_LIMIT_SECONDS = 60.0
#: Consecutive failed runs of one job that make the pipeline degraded: one (a run worker
#: killed, a database restarted under it) until the job's next run succeeds.
REPEATED_FAILURES = 1


@dataclass(frozen=True, order=True)
class Reason:
    level: int
    text: str

    def line(self) -> str:
        return f"{LEVEL_NAMES[self.level]} {self.text}"


@dataclass(frozen=True)
class FailingJob:
    """A job whose latest ``failures`` runs all failed; ``error`` is the newest one's."""

    job: str
    failures: int
    error: str | None


def exit_code(reasons: Iterable[Reason]) -> int:
    return max((reason.level for reason in reasons), default=OK)


def daemon_reasons(
    ages: Mapping[str, float], required: Iterable[str], *, limit: float = HEARTBEAT_LIMIT_SECONDS
) -> list[Reason]:
    """``ages``: seconds since each daemon type's latest heartbeat; one line for the types
    never seen, one for those too old (one daemon process runs them all).

    >>> [r.line() for r in daemon_reasons({"SENSOR": 75.0}, ["SENSOR", "SCHEDULER"])]
    ['DOWN daemon: no heartbeat ever recorded (SCHEDULER): is dagster-daemon running?', \
'DOWN daemon: heartbeat older than 60 s (SENSOR 75 s): dagster-daemon is down or stuck']
    """
    never = [daemon for daemon in sorted(required) if daemon not in ages]
    old = [f"{daemon} {ages[daemon]:.0f} s" for daemon in sorted(required)
           if ages.get(daemon, 0.0) > limit]  # fmt: skip
    reasons = []
    if never:
        reasons.append(
            Reason(
                DOWN,
                f"daemon: no heartbeat ever recorded ({', '.join(never)}): is"
                " dagster-daemon running?",
            )
        )
    if old:
        reasons.append(
            Reason(
                DOWN,
                f"daemon: heartbeat older than {limit:.0f} s ({', '.join(old)}):"
                " dagster-daemon is down or stuck",
            )
        )
    return reasons


def failing_job_reasons(jobs: Iterable[FailingJob]) -> list[Reason]:
    return [
        Reason(
            DEGRADED,
            f"runs: {job.job}: its last"
            + (f" {job.failures} runs" if job.failures > 1 else " run")
            + " failed"
            + (f": {' '.join(job.error.split())[:300]}" if job.error else ""),
        )
        for job in jobs
        if job.failures >= REPEATED_FAILURES
    ]


def tier_reasons(tables: Iterable[Freshness]) -> list[Reason]:
    """A tier whose slowest table is behind its SLA: no successful batch within the SLA.

    >>> slow = Freshness("payment", "priority", 35.0, 10, "icoms.PAYMENT")
    >>> [r.line() for r in tier_reasons([slow, Freshness("account", "priority", 1, 10, "x")])]
    ['DEGRADED tier priority: icoms.PAYMENT 35.0 s behind its source (SLA 10 s)']
    """
    worst: dict[str, Freshness] = {}
    for table in tables:
        if table.fresh:
            continue
        known = worst.get(table.tier)
        if known is None or (
            known.lag_seconds is not None
            and (table.lag_seconds is None or table.lag_seconds > known.lag_seconds)
        ):
            worst[table.tier] = table
    reasons = []
    for tier in sorted(worst, key=lambda name: TIERS.index(name) if name in TIERS else 99):
        table = worst[tier]
        behind = "never loaded" if table.lag_seconds is None else (
            f"{table.lag_seconds:.1f} s behind its source"
        )  # fmt: skip
        reasons.append(
            Reason(DEGRADED, f"tier {tier}: {table.table} {behind} (SLA {table.sla_seconds:g} s)")
        )
    return reasons


def sensor_reasons(engine: SyncEngine) -> list[Reason]:
    """Sensors failing tick after tick, as the alert sensor last recorded them."""
    record = pipeline_record.read(engine.warehouse.conn)
    if record is None:
        return []
    return [
        Reason(DEGRADED, f"sensor: {alert.subject}: {' '.join(alert.summary.split())[:300]}")
        for alert in record.of_kind("sensor_error")
    ]


def engine_reasons(engine: SyncEngine) -> list[Reason]:
    """The warehouse, each biller, each tier's freshness, failing sensors."""
    try:
        engine.warehouse.conn.execute("SELECT 1")
    except Exception as error:  # any failure to reach it is the finding
        return [Reason(DOWN, f"warehouse: unreachable: {mask_error(error)}")]
    reasons: list[Reason] = []
    reachable = []
    for catalog in engine.catalogs:
        try:
            engine.source(catalog.system).scalar("SELECT 1")
            reachable.append(catalog.system)
        except Exception as error:  # the biller is down, or refuses the capture user
            reasons.append(
                Reason(DOWN, f"biller {catalog.system}: unreachable: {mask_error(error)}")
            )
    if len(reachable) == len(engine.catalogs):
        reasons += tier_reasons(table_freshness(engine))
    reasons += sensor_reasons(engine)
    return reasons
