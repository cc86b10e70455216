"""Outbox retention, off the batch commit path: batched deletes the relays run between
publishes.

An event goes once every registered sink published it. An event older than
``feed.retention_hours`` goes anyway (a sink that has been down that long must not fill the
warehouse); each sink that had not published it records how many it lost, which the
``feed_lag`` alert reports.

Deletes take at most ``batch_rows`` rows per statement, each its own short transaction on
the (entity, event_id) index: a batch commit that appends events never waits on them for
long (a delete locks only the rows it removes, which no commit touches).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from billing_sync.load.outbox import EVENT_TABLE, OFFSET_TABLE, SINK_TABLE

BATCH_ROWS = 5_000


@dataclass(frozen=True)
class Purged:
    published: int  # events every sink had published
    expired: int  # events older than the retention, published or not
    lost: dict[str, int]  # per sink: expired events it had not published


def _published_up_to(conn: psycopg.Connection) -> dict[str, int]:
    """Per entity with events: the newest id every registered sink has published."""
    rows = conn.execute(
        f"SELECT e.entity, min(coalesce(o.published_id, s.start_event_id))"
        f" FROM (SELECT DISTINCT entity FROM {EVENT_TABLE}) e CROSS JOIN {SINK_TABLE} s"
        f" LEFT JOIN {OFFSET_TABLE} o ON o.sink = s.sink AND o.entity = e.entity"
        " GROUP BY e.entity"
    ).fetchall()
    return {entity: int(up_to) for entity, up_to in rows if up_to is not None}


def _delete_batches(conn: psycopg.Connection, where: str, params: tuple[object, ...]) -> int:
    total = 0
    while True:
        with conn.transaction():
            cursor = conn.execute(
                f"DELETE FROM {EVENT_TABLE} WHERE event_id IN (SELECT event_id FROM {EVENT_TABLE}"
                f" WHERE {where} ORDER BY event_id LIMIT {BATCH_ROWS})",
                params,
            )
        total += cursor.rowcount
        if cursor.rowcount < BATCH_ROWS:
            return total


def purge(conn: psycopg.Connection, *, retention_hours: float) -> Purged:
    """Delete what every sink published, then what is older than the retention.

    ``conn`` is in autocommit mode (each batch its own transaction)."""
    published = 0
    with conn.transaction():
        sinks = conn.execute(f"SELECT count(*) FROM {SINK_TABLE}").fetchone()
        up_to = _published_up_to(conn) if sinks and sinks[0] else {}
    for entity, event_id in up_to.items():
        published += _delete_batches(conn, "entity = %s AND event_id <= %s", (entity, event_id))
    age = "created_at < clock_timestamp() - make_interval(secs => %s)"
    with conn.transaction():
        lost_rows = conn.execute(
            f"SELECT s.sink, count(*) FROM {EVENT_TABLE} e JOIN {SINK_TABLE} s"
            f" ON e.event_id > coalesce((SELECT o.published_id FROM {OFFSET_TABLE} o"
            f"  WHERE o.sink = s.sink AND o.entity = e.entity), s.start_event_id)"
            f" WHERE e.{age} GROUP BY s.sink",
            (retention_hours * 3600,),
        ).fetchall()
        lost = {sink: int(count) for sink, count in lost_rows}
        for sink, count in lost.items():
            conn.execute(
                f"UPDATE {SINK_TABLE} SET expired_events = expired_events + %s,"
                " expired_at = clock_timestamp() WHERE sink = %s",
                (count, sink),
            )
    expired = _delete_batches(conn, age, (retention_hours * 3600,))
    return Purged(published, expired, lost)
