"""What Dagster knows about the pipeline, kept in the warehouse for what must not import
Dagster (``billing-sync status``, ``health``, the metrics exporter; issue 14 item 4).

The alert sensor writes it on every tick (:mod:`billing_sync.defs.alerts`): the alerts
firing now (failed runs per job and cause, sensors failing tick after tick, breaches, ...)
and when it looked. Its age is itself a signal: the sensor runs in the daemon, so a record
that stopped moving means the daemon or the code server stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from billing_sync.entities import STATE_SCHEMA

ALERTS_TABLE = f"{STATE_SCHEMA}.pipeline_alerts"
TICK_TABLE = f"{STATE_SCHEMA}.pipeline_tick"

DDL = f"""
CREATE TABLE IF NOT EXISTS {ALERTS_TABLE} (
    key text PRIMARY KEY,
    kind text NOT NULL,
    subject text NOT NULL,
    severity text NOT NULL,
    summary text NOT NULL,
    since timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {TICK_TABLE} (
    id integer PRIMARY KEY CHECK (id = 1),
    recorded_at timestamptz NOT NULL
);
"""


@dataclass(frozen=True)
class RecordedAlert:
    kind: str
    subject: str
    severity: str
    summary: str
    since: datetime


@dataclass(frozen=True)
class PipelineRecord:
    """The alert sensor's last look: ``recorded_at`` and what was firing then."""

    recorded_at: datetime
    alerts: list[RecordedAlert]

    def of_kind(self, kind: str) -> list[RecordedAlert]:
        return [alert for alert in self.alerts if alert.kind == kind]

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.recorded_at).total_seconds()


def record(conn: psycopg.Connection[Any], firing: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the record with ``firing`` (an :class:`~billing_sync.alerts.AlertState`'s
    ``firing``: key -> kind, subject, severity, summary, since as epoch seconds)."""
    with conn.transaction():
        conn.execute(DDL)
        conn.execute(f"DELETE FROM {ALERTS_TABLE}")
        for key, sent in firing.items():
            conn.execute(
                f"INSERT INTO {ALERTS_TABLE} (key, kind, subject, severity, summary, since)"
                " VALUES (%s, %s, %s, %s, %s, to_timestamp(%s))",
                (
                    key,
                    str(sent.get("kind", "")),
                    str(sent.get("subject", "")),
                    str(sent.get("severity", "")),
                    str(sent.get("summary", ""))[:2000],
                    float(sent.get("since") or 0.0),
                ),
            )
        conn.execute(
            f"INSERT INTO {TICK_TABLE} (id, recorded_at) VALUES (1, clock_timestamp())"
            " ON CONFLICT (id) DO UPDATE SET recorded_at = excluded.recorded_at"
        )


def read(conn: psycopg.Connection[Any]) -> PipelineRecord | None:
    """The record, or ``None`` when the alert sensor never wrote one."""
    with conn.transaction():
        row = conn.execute("SELECT to_regclass(%s)", (TICK_TABLE,)).fetchone()
        if row is None or row[0] is None:
            return None
        tick = conn.execute(f"SELECT recorded_at FROM {TICK_TABLE}").fetchone()
        if tick is None:
            return None
        alerts = conn.execute(
            f"SELECT kind, subject, severity, summary, since FROM {ALERTS_TABLE} ORDER BY since"
        ).fetchall()
    return PipelineRecord(tick[0], [RecordedAlert(*alert) for alert in alerts])
