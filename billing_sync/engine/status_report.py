"""``billing-sync status``: every table against its SLA, and the pipeline's own state.

Per table (:func:`billing_sync.engine.status.table_status`): the caught-up point in UTC
(the watermark's native biller-local time and zone in ``--json``), the lag and the tier's
SLA with a breach mark, live rows (not flagged ``_is_deleted``) in source, warehouse and
cache, the cache batch. Then what holds the pipeline: paused, a table whose sync is
refused (the shrink guard), a source transaction holding a biller's horizon (once per
transaction), the cache behind the warehouse, the age of analysts' read copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from billing_sync.engine import pipeline_record
from billing_sync.engine.parts import EngineParts
from billing_sync.engine.pipeline_record import PipelineRecord
from billing_sync.engine.status import TableStatus, table_status
from billing_sync.load.read_copy import published_as_of
from billing_sync.reconcile import events


@dataclass(frozen=True)
class StatusReport:
    tables: list[TableStatus]
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    paused: bool = False
    refused: list[events.Refusal] = field(default_factory=list)
    read_copy: Path | None = None
    read_copy_as_of: datetime | None = None
    pipeline: PipelineRecord | None = None  # the alert sensor's last record

    def as_json(self) -> dict[str, Any]:
        return {
            "checked_at": _iso(self.checked_at),
            "paused": self.paused,
            "refused": [
                {
                    "table": r.name,
                    "gone": r.gone,
                    "reason": r.reason,
                    "detected_at": _iso(r.detected_at),
                }
                for r in self.refused
            ],
            "read_copy": str(self.read_copy) if self.read_copy else None,
            "read_copy_as_of": _iso(self.read_copy_as_of),
            "horizon_holders": [
                {
                    "system": system,
                    "pid": holder.pid,
                    "held_seconds": round(seconds, 1),
                    "open_since_utc": _iso(_utc(holder.started_at, zone)),
                    "zone": zone,
                }
                for system, holder, seconds, zone in _holders(self.tables)
            ],
            "pipeline": _pipeline_json(self.pipeline, self.checked_at),
            "tables": [_table_json(s) for s in self.tables],
        }


def status_report(engine: EngineParts) -> StatusReport:
    statuses = table_status(engine)
    settings = engine.settings
    return StatusReport(
        tables=statuses,
        paused=settings.pause_file.exists(),
        refused=events.open_refusals(engine.warehouse.conn),
        read_copy=settings.read_copy_path,
        read_copy_as_of=published_as_of(settings.resolved_cache_path),
        pipeline=pipeline_record.read(engine.warehouse.conn),
    )


#: The alert sensor records every 10 s or so while the daemon and code server run.
RECORD_STALE_SECONDS = 120.0


def _pipeline_json(record: PipelineRecord | None, now: datetime) -> dict[str, Any] | None:
    if record is None:
        return None

    def alerts(kind: str | None) -> list[dict[str, Any]]:
        return [
            {"kind": a.kind, "subject": a.subject, "severity": a.severity,
             "summary": a.summary, "since": _iso(a.since)}
            for a in record.alerts
            if kind is None or a.kind == kind
        ]  # fmt: skip

    return {
        "recorded_at": _iso(record.recorded_at),
        "age_seconds": round(record.age_seconds(now), 1),
        "failing_runs": alerts("run_failed"),
        "sensor_errors": alerts("sensor_error"),
        "alerts": alerts(None),
    }


def _pipeline_notes(record: PipelineRecord | None, now: datetime) -> list[str]:
    """Failed runs and failing sensors first, then the other alerts firing, as the alert
    sensor last recorded them; a record too old says the daemon may be down."""
    if record is None:
        return [
            "Dagster: nothing recorded yet (the alert sensor records failing runs, sensor"
            " errors and alerts on every tick while the daemon runs)"
        ]
    notes = []
    for alert in record.alerts:
        label = {"run_failed": "FAILING RUNS", "sensor_error": "SENSOR ERROR"}.get(
            alert.kind, f"ALERT {alert.kind}"
        )
        notes.append(
            f"{label}: {alert.subject} since {_clock(alert.since.astimezone(UTC))} UTC:"
            f" {' '.join(alert.summary.split())[:300]}"
        )
    age = record.age_seconds(now)
    if age > RECORD_STALE_SECONDS:
        notes.append(
            f"Dagster: the alert sensor last recorded {age:.0f}s ago: the daemon or the code"
            " server may be down (`billing-sync health`)"
        )
    elif not record.alerts:
        notes.append(f"Dagster: no failing run, sensor or alert ({age:.0f}s ago)")
    return notes


def _utc(local: datetime | None, zone: str) -> datetime | None:
    """A watermark's naive biller-local time as UTC."""
    if local is None:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _table_json(s: TableStatus) -> dict[str, Any]:
    return {
        "table": f"{s.system}.{s.table}",
        "entity": s.entity,
        "tier": s.tier,
        "caught_up_to_utc": _iso(_utc(s.caught_up_to, s.zone)),
        "watermark_local": s.cursor_ts.isoformat() if s.cursor_ts else None,
        "watermark_zone": s.zone,
        "lag_seconds": None if s.lag_seconds is None else round(s.lag_seconds, 2),
        "sla_seconds": s.sla_seconds,
        "breach": s.breach,
        "source_rows": s.source_rows,
        "warehouse_rows": s.warehouse_live_rows,
        "warehouse_deleted_rows": None
        if s.warehouse_live_rows is None
        else s.warehouse_rows - s.warehouse_live_rows,
        "cache_rows": s.cache_live_rows,
        "cache_busy": s.cache_rows is None,
        "cache_batch": s.cache_batch,
        "warehouse_batch": s.warehouse_batch,
        "cache_lag_seconds": round(s.cache_lag.seconds, 2)
        if s.cache_lag and s.cache_lag.behind
        else 0.0,
        "late_rows": s.late_rows,
        "unreadable_rows": s.unreadable_rows,
    }


def _holders(statuses: list[TableStatus]) -> list[tuple[str, Any, float, str]]:
    """Each (system, transaction) holding a horizon once, however many tables wait."""
    seen: dict[tuple[str, str], tuple[str, Any, float, str]] = {}
    for s in statuses:
        if s.held_back_by is not None:
            seen.setdefault((s.system, s.held_back_by.pid), (s.system, s.held_back_by,
                                                             s.hold_seconds, s.zone))  # fmt: skip
    return list(seen.values())


def _live(live: int | None, total: int | None) -> str:
    if total is None:
        return "busy"
    return str(total if live is None else live)


def format_status(report: StatusReport | list[TableStatus]) -> str:
    if isinstance(report, list):
        report = StatusReport(tables=report)
    rows = [
        (
            f"{s.system}.{s.table}",
            s.tier,
            _clock(_utc(s.caught_up_to, s.zone)),
            "-" if s.lag_seconds is None else f"{s.lag_seconds:.1f}",
            "-" if s.sla_seconds is None else f"{s.sla_seconds:.0f}",
            "BREACH" if s.breach else "ok",
            "busy"
            if s.cache_lag is None
            else f"{s.cache_lag.seconds:.1f}"
            if s.cache_lag.behind
            else "-",
            str(s.source_rows),
            _live(s.warehouse_live_rows, s.warehouse_rows),
            _live(s.cache_live_rows, s.cache_rows),
            "busy" if s.cache_batch is None else f"{s.cache_batch}/{s.warehouse_batch}",
            str(s.late_rows),
        )
        for s in report.tables
    ]
    header = ("table", "tier", "caught up to (UTC)", "lag s", "SLA s", "", "cache lag s",
              "source", "warehouse", "cache", "cache batch", "late")  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]  # fmt: skip
    left = {0, 1, 2, 5}

    def line(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return " ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in pairs).rstrip()

    lines = [line(header), "-" * len(line(header)), *(line(r) for r in rows)]
    lines.append(
        f"checked at {_clock(report.checked_at)} UTC; source: the biller table's rows;"
        " warehouse, cache: live rows (a row deleted in the biller is flagged _is_deleted and"
        " not counted); lag: the biller's clock to the caught-up point"
    )
    lines.extend(_notes(report))
    return "\n".join(lines)


def _clock(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _notes(report: StatusReport) -> list[str]:
    notes = []
    notes.extend(_pipeline_notes(report.pipeline, report.checked_at))
    if report.paused:
        notes.append("PAUSED: sensors start no sync run (`billing-sync resume`)")
    breached = [f"{s.system}.{s.table}" for s in report.tables if s.breach]
    if breached:
        notes.append(f"behind their SLA: {', '.join(breached)}")
    for refusal in report.refused:
        notes.append(
            f"FAILING: {refusal.name} sync refused since {_clock(refusal.detected_at)} UTC:"
            f" {refusal.reason}"
        )
    behind = sorted({s.entity for s in report.tables if s.cache_lag and s.cache_lag.behind})
    if behind:
        notes.append(
            f"cache behind the warehouse for {', '.join(behind)}: a process holds the DuckDB "
            "file open; it catches up from the warehouse once the file is free"
        )
    for s in report.tables:
        if s.unreadable_rows:
            notes.append(
                f"{s.system}.{s.table}: {s.unreadable_rows} rows with an unreadable change stamp"
                " (NULL, 'infinity' or not a real date and time): the tail never reads them;"
                " `billing-sync verify` quarantines and lists them"
            )
    for system, holder, seconds, zone in _holders(report.tables):
        notes.append(
            f"horizon of {system} held back {seconds:.0f}s by source transaction pid"
            f" {holder.pid}, open since {_clock(_utc(holder.started_at, zone))} UTC:"
            " freshness waits for it to end"
        )
    if report.read_copy is not None:
        if report.read_copy_as_of is None:
            notes.append(f"analysts' read copy {report.read_copy}: not published yet")
        else:
            age = (report.checked_at - report.read_copy_as_of).total_seconds()
            notes.append(
                f"analysts' read copy {report.read_copy}: the cache as of"
                f" {_clock(report.read_copy_as_of)} UTC ({age:.0f}s ago)"
            )
    return notes
