"""What is wrong now, as :class:`Condition` values, from plain figures (pure functions).

Each condition has a stable ``key`` (``kind:subject``): while a condition with that key
stays active it is one alert, sent once; when it is gone, it resolves.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["warning", "critical"]

RUN_FAILED = "run_failed"
CHECK_ERROR = "check_error"
FRESHNESS = "freshness_breach"
LATE_ROWS = "late_rows"
QUARANTINE_SPIKE = "quarantine_spike"
HORIZON_HELD = "horizon_held"
PARITY_REPAIRED = "parity_repaired"
SHRINK_REFUSED = "shrink_refused"
CACHE_SET_ASIDE = "cache_set_aside"
SENSOR_ERROR = "sensor_error"
FEED_LAG = "feed_lag"  # billing_sync.alerts.feed
PROCESS_RESTARTED = "process_restarted"
KINDS = (
    RUN_FAILED, CHECK_ERROR, FRESHNESS, LATE_ROWS, QUARANTINE_SPIKE, HORIZON_HELD,
    PARITY_REPAIRED, SHRINK_REFUSED, CACHE_SET_ASIDE, SENSOR_ERROR, FEED_LAG,
    PROCESS_RESTARTED,
)  # fmt: skip

#: What on-call does about each kind: the README's Operations runbook, in one line.
ACTIONS: dict[str, str] = {
    RUN_FAILED: "read the run's error in the Dagster UI; the sensor starts the next run from "
    "the committed watermark; fix the cause (source down, schema drift) or re-run",
    CHECK_ERROR: "a batch had too many bad rows and did not load: `billing-sync quarantine "
    "list`, fix the source or raise the entity's threshold, then let the sensor re-run",
    FRESHNESS: "`billing-sync status`: is a sync run failing, paused, or held back by a "
    "long source transaction?",
    LATE_ROWS: "rows committed below the watermark (long source transactions): raise "
    "capture.delay_seconds",
    QUARANTINE_SPIKE: "`billing-sync quarantine list`, then `explain`; fix the source or "
    "`release` rows that are acceptable",
    HORIZON_HELD: "a source transaction has been open too long: ask the biller's DBA about "
    "the pid; freshness waits for it",
    PARITY_REPAIRED: "the tail missed rows that parity repaired: rows committed later than "
    "capture.lookback_seconds (raise it, or capture.delay_seconds), or source stamps going "
    "backwards (an application server's clock lagging: fix its clock)",
    SHRINK_REFUSED: "rows vanished from the source beyond the delete cap and the table's sync "
    "is stopped: check the source (an outage, a restore); if the rows were really deleted, "
    "`billing-sync verify SYSTEM.TABLE --repair --max-delete-fraction F` confirms them",
    CACHE_SET_ASIDE: "the DuckDB cache file was unreadable and was set aside; the cache is "
    "rebuilt from the warehouse. Look at the disk (full? failing?), then remove the file",
    FEED_LAG: "`billing-sync feed status`; is the sink's server up (the relay's log says why it "
    "retries)? Events wait in the outbox until feed.retention_hours",
    PROCESS_RESTARTED: "a program of `billing-sync serve` died and supervisord restarted it (or"
    " is restarting it): its log in <state>/logs/<program>.log says why; `billing-sync health`",
    SENSOR_ERROR: "the sensor's error is on its page in the Dagster UI (Automation); while it "
    "fails, what it does (start sync runs, evaluate freshness, alert) does not happen",
}


@dataclass(frozen=True)
class Condition:
    """Something wrong now. ``key`` identifies it across evaluations; ``cause`` (when set)
    tells apart conditions of one subject that are different problems, each its own alert."""

    kind: str
    subject: str
    severity: Severity
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    cause: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}" + (f"#{self.cause}" if self.cause else "")

    @property
    def action(self) -> str:
        return ACTIONS.get(self.kind, "")


@dataclass(frozen=True)
class FinishedRun:
    """A finished run of a job."""

    job: str
    run_id: str
    failed: bool
    error: str | None = None
    ended_at: float = 0.0  # epoch seconds


_VARYING = re.compile(
    r"[0-9a-f]{8}-[0-9a-f-]{27,}|\b[0-9a-f]{12,}\b|\d+(?:[.:]\d+)*|'[^']*'|\"[^\"]*\"",
    re.IGNORECASE,
)


def cause_of(error: str | None) -> str:
    """A short, stable id of what went wrong: the error's first line with what varies from
    run to run (numbers, times, ids, quoted values) left out. Two runs failing for one
    reason share it; a new reason gets a new one.

    >>> cause_of("WarehouseUnavailable: connection to 10.0.0.5:5432 refused") == cause_of(
    ...     "WarehouseUnavailable: connection to 10.0.0.7:5432 refused")
    True
    >>> cause_of("ShrinkRefused: icoms.PAYMENT lost 40 rows") == cause_of("killed by signal 9")
    False
    >>> cause_of(None)
    'unknown'
    """
    if not error:
        return "unknown"
    first = error.strip().splitlines()[0] if error.strip() else error
    shape = " ".join(_VARYING.sub("#", first).lower().split())[:200]
    return hashlib.sha1(shape.encode()).hexdigest()[:10]


def run_failures(
    failed: Iterable[FinishedRun], *, healthy_since: Mapping[str, float] | None = None
) -> list[Condition]:
    """One condition per job and cause among failed runs that ended after the job was last
    healthy (``healthy_since``: a successful run, or for a sync job its tier's latest
    committed batch, which a long run records long before it ends). Without an entry for
    a job, every failed run given counts. The newest run of each cause is the one named."""
    since = healthy_since or {}
    newest: dict[tuple[str, str], FinishedRun] = {}
    for run in failed:
        if not run.failed or run.ended_at <= since.get(run.job, float("-inf")):
            continue
        key = (run.job, cause_of(run.error))
        if key not in newest or run.ended_at > newest[key].ended_at:
            newest[key] = run
    return [
        Condition(
            RUN_FAILED,
            run.job,
            "critical",
            f"{run.job} failed (run {run.run_id[:8]})" + (f": {run.error}" if run.error else ""),
            {"run_id": run.run_id, "job": run.job, "error": run.error},
            cause=cause,
        )
        for (_, cause), run in sorted(newest.items())
    ]


def process_troubles(troubles: Iterable[tuple[str, bool, str]]) -> list[Condition]:
    """``(program, down, text)`` of ``serve``'s programs: one not running is critical, one
    restarted lately a warning; one alert per program, resolved once it has run a while.

    >>> [c.key for c in process_troubles([("daemon", False, "restarted 3 s ago")])]
    ['process_restarted:daemon']
    """
    return [
        Condition(
            PROCESS_RESTARTED,
            program,
            "critical" if down else "warning",
            text,
            {"program": program, "down": down},
        )
        for program, down, text in troubles
    ]


@dataclass(frozen=True)
class CheckOutcome:
    """The latest evaluation of an asset check."""

    asset: str
    check: str
    passed: bool
    severity: str  # "ERROR" or "WARN"
    description: str | None = None
    run_id: str | None = None


def check_errors(latest: Iterable[CheckOutcome]) -> list[Condition]:
    """An ERROR-severity check whose latest evaluation failed."""
    return [
        Condition(
            CHECK_ERROR,
            f"{outcome.asset}/{outcome.check}",
            "critical",
            f"check {outcome.check} on {outcome.asset} failed"
            + (f": {outcome.description}" if outcome.description else ""),
            {"asset": outcome.asset, "check": outcome.check, "run_id": outcome.run_id},
        )
        for outcome in latest
        if not outcome.passed and outcome.severity == "ERROR"
    ]


@dataclass(frozen=True)
class Freshness:
    """How far behind the source one entity is, against its tier's SLA."""

    entity: str
    tier: str
    lag_seconds: float | None  # None: never caught up (no first load yet)
    sla_seconds: float
    table: str

    @property
    def fresh(self) -> bool:
        return self.lag_seconds is not None and self.lag_seconds <= self.sla_seconds


def freshness_breaches(entities: Iterable[Freshness]) -> list[Condition]:
    return [
        Condition(
            FRESHNESS,
            f.entity,
            "critical" if f.tier == "priority" else "warning",
            f"{f.entity} is "
            + ("not loaded yet from" if f.lag_seconds is None else f"{f.lag_seconds:.0f}s behind")
            + f" the source ({f.table}); its {f.tier} SLA is {f.sla_seconds:g}s",
            {"entity": f.entity, "lag_seconds": f.lag_seconds, "sla_seconds": f.sla_seconds},
        )
        for f in entities
        if not f.fresh
    ]


def late_rows(late_by_entity: Mapping[str, int], *, window_seconds: float) -> list[Condition]:
    """Late rows seen within the window (resolves once a window passes without any)."""
    return [
        Condition(
            LATE_ROWS,
            entity,
            "warning",
            f"{rows} late rows in {entity} within {window_seconds / 60:.0f} min: the capture "
            "delay is too small for this source's transactions",
            {"entity": entity, "late_rows": rows},
        )
        for entity, rows in sorted(late_by_entity.items())
        if rows > 0
    ]


def quarantine_spikes(
    recent_by_entity: Mapping[str, int], *, threshold: int, window_seconds: float
) -> list[Condition]:
    """At least ``threshold`` rows newly quarantined within the window."""
    return [
        Condition(
            QUARANTINE_SPIKE,
            entity,
            "warning",
            f"{rows} {entity} rows quarantined in the last {window_seconds / 60:.0f} min",
            {"entity": entity, "rows": rows, "threshold": threshold},
        )
        for entity, rows in sorted(recent_by_entity.items())
        if rows >= threshold
    ]


def horizon_held(
    pid: int | str | None, hold_seconds: float, *, limit_seconds: float, system: str = "source"
) -> list[Condition]:
    """A source transaction holding the capture horizon back past the limit."""
    if pid is None or hold_seconds <= limit_seconds:
        return []
    return [
        Condition(
            HORIZON_HELD,
            system,
            "warning",
            f"{system} transaction pid {pid} has held the capture horizon back for "
            f"{hold_seconds:.0f}s (limit {limit_seconds:.0f}s)",
            {"pid": pid, "hold_seconds": hold_seconds},
        )
    ]


def parity_repairs(
    by_table: Mapping[str, Mapping[str, int]], *, window_seconds: float
) -> list[Condition]:
    """Rows ``verify --repair`` had to repair within the window: the tail missed them."""
    found = []
    for table, counts in sorted(by_table.items()):
        backwards = counts.get("backwards", 0)
        repaired = sum(counts.get(kind, 0) for kind in ("missing", "stale", "deleted"))
        if not repaired:
            continue
        text = ", ".join(
            f"{counts[kind]} {kind}" for kind in ("missing", "stale", "deleted") if counts.get(kind)
        )
        found.append(
            Condition(
                PARITY_REPAIRED,
                table,
                "warning",
                f"parity repaired {table} within {window_seconds / 60:.0f} min: {text}"
                + (f" ({backwards} back to an older source version)" if backwards else ""),
                {"table": table, **counts},
            )
        )
    return found


@dataclass(frozen=True)
class ShrinkRefusal:
    table: str  # system.TABLE
    gone: int
    warehouse_rows: int
    reason: str


def shrink_refusals(refusals: Iterable[ShrinkRefusal]) -> list[Condition]:
    """An open refusal to follow a source that lost rows (until an operator resolves it)."""
    return [
        Condition(
            SHRINK_REFUSED,
            refusal.table,
            "critical",
            f"{refusal.table}: {refusal.gone} of {refusal.warehouse_rows} rows are gone from the "
            "source, past the delete cap; its sync is stopped until resolved",
            {"table": refusal.table, "gone": refusal.gone, "reason": refusal.reason},
        )
        for refusal in refusals
    ]


def cache_set_aside(files: Iterable[str]) -> list[Condition]:
    """Damaged cache files set aside and not removed yet (one condition for all)."""
    names = sorted(files)
    if not names:
        return []
    return [
        Condition(
            CACHE_SET_ASIDE,
            "cache",
            "warning",
            f"the DuckDB cache was unreadable and was set aside ({len(names)} file(s), latest "
            f"{names[-1]}); it is rebuilt from the warehouse",
            {"files": names},
        )
    ]


def without_duplicates(conditions: Iterable[Condition]) -> list[Condition]:
    """A freshness check at ERROR says what a freshness breach of its entity already says,
    with fewer figures: keep the breach only."""
    found = list(conditions)
    breached = {f"warehouse/{x.subject}/freshness" for x in found if x.kind == FRESHNESS}
    return [x for x in found if not (x.kind == CHECK_ERROR and x.subject in breached)]


@dataclass(frozen=True)
class SensorTicks:
    """A sensor's latest ticks, newest first: whether each failed, and the newest error."""

    sensor: str
    failed: tuple[bool, ...]
    error: str | None = None


def sensor_errors(sensors: Iterable[SensorTicks], *, consecutive: int = 2) -> list[Condition]:
    """A sensor whose last ``consecutive`` ticks all failed (one failed tick can be a
    restart or a blip; resolves at its next good tick)."""
    found = []
    for ticks in sensors:
        recent = ticks.failed[:consecutive]
        if len(recent) < consecutive or not all(recent):
            continue
        first = (ticks.error or "no error recorded").strip().splitlines()
        message = " ".join(first[0].split())[:300] if first else "no error recorded"
        found.append(
            Condition(
                SENSOR_ERROR,
                ticks.sensor,
                "critical",
                f"sensor {ticks.sensor} failed its last {consecutive} ticks: {message}",
                {"sensor": ticks.sensor, "error": message},
            )
        )
    return found
