"""What is wrong now, as :class:`Condition` values, from plain figures (pure functions).

Each condition has a stable ``key`` (``kind:subject``): while a condition with that key
stays active it is one alert, sent once; when it is gone, it resolves.
"""

from __future__ import annotations

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
KINDS = (
    RUN_FAILED, CHECK_ERROR, FRESHNESS, LATE_ROWS, QUARANTINE_SPIKE, HORIZON_HELD,
    PARITY_REPAIRED, SHRINK_REFUSED, CACHE_SET_ASIDE,
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
}


@dataclass(frozen=True)
class Condition:
    """Something wrong now. ``key`` identifies it across evaluations."""

    kind: str
    subject: str
    severity: Severity
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"

    @property
    def action(self) -> str:
        return ACTIONS.get(self.kind, "")


@dataclass(frozen=True)
class FinishedRun:
    """The latest finished run of a job."""

    job: str
    run_id: str
    failed: bool
    error: str | None = None


def run_failures(latest: Iterable[FinishedRun]) -> list[Condition]:
    """A job whose latest finished run failed (resolves when one succeeds)."""
    return [
        Condition(
            RUN_FAILED,
            run.job,
            "critical",
            f"{run.job} failed (run {run.run_id[:8]})" + (f": {run.error}" if run.error else ""),
            {"run_id": run.run_id, "job": run.job, "error": run.error},
        )
        for run in latest
        if run.failed
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
            + ("not loaded yet" if f.lag_seconds is None else f"{f.lag_seconds:.0f}s behind")
            + f" the source ({f.table}); its {f.tier} SLA is {f.sla_seconds:.0f}s",
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
