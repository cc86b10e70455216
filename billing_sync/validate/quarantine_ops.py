"""Operating the quarantine: list, explain and release its rows, purge released ones.

What ``billing-sync quarantine list | explain | release`` and the retention job call; the
screening of batches and the storage are in :mod:`billing_sync.validate.quarantine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from billing_sync.config import SourceCatalog
from billing_sync.entities import STATE_SCHEMA, entities_of
from billing_sync.transform.protect import redact_text
from billing_sync.validate.quarantine import (
    MANUAL,
    OPEN,
    PENDING,
    QUARANTINE_TABLE,
    RELEASED,
    mark_released,
    payload_table,
)


@dataclass(frozen=True)
class Entry:
    """One line of the quarantine."""

    entity: str
    source_system: str
    source_key: str
    source_table: str
    source_version: datetime
    expectation: str
    column: str | None
    offending_value: str | None
    problems: list[dict[str, Any]]
    parent_keys: dict[str, str]
    status: str
    batch_id: int | None
    first_seen: datetime
    last_seen: datetime
    times_seen: int
    released_at: datetime | None
    release_reason: str | None


_ENTRY_COLUMNS = (
    "entity, source_system, source_key, source_table, source_version, expectation, column_name,"
    " offending_value, problems, parent_keys, status, batch_id, first_seen, last_seen,"
    " times_seen, released_at, release_reason"
)


def entries(
    conn: psycopg.Connection[Any],
    *,
    entity: str | None = None,
    statuses: Sequence[str] = (OPEN, PENDING),
    key: str | None = None,
    limit: int = 100,
) -> list[Entry]:
    """Quarantine lines, newest first."""
    rows = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM {QUARANTINE_TABLE}"
        " WHERE (%(entity)s::text IS NULL OR entity = %(entity)s)"
        " AND status = ANY(%(statuses)s) AND (%(key)s::text IS NULL OR source_key = %(key)s)"
        " ORDER BY last_seen DESC, entity, source_key LIMIT %(limit)s",
        {"entity": entity, "statuses": list(statuses), "key": key, "limit": limit},
    ).fetchall()
    return [
        Entry(
            entity=row[0],
            source_system=row[1],
            source_key=row[2],
            source_table=row[3],
            source_version=row[4],
            expectation=row[5],
            column=row[6],
            offending_value=row[7],
            problems=list(row[8]),
            parent_keys=dict(row[9] or {}),
            status=row[10],
            batch_id=row[11],
            first_seen=row[12],
            last_seen=row[13],
            times_seen=row[14],
            released_at=row[15],
            release_reason=row[16],
        )
        for row in rows
    ]


def counts(
    conn: psycopg.Connection[Any], *, recent_seconds: float = 300.0
) -> dict[str, dict[str, int]]:
    """Per entity: rows open, pending, and open rows first seen in the last ``recent_seconds``."""
    rows = conn.execute(
        f"SELECT entity, count(*) FILTER (WHERE status = 'open'),"
        " count(*) FILTER (WHERE status = 'pending'),"
        " count(*) FILTER (WHERE status = 'open'"
        "   AND first_seen > clock_timestamp() - make_interval(secs => %s))"
        f" FROM {QUARANTINE_TABLE} WHERE status <> 'released' GROUP BY entity",
        (recent_seconds,),
    ).fetchall()
    return {row[0]: {"open": row[1], "pending": row[2], "recent": row[3]} for row in rows}


def printable(text: str) -> str:
    """``text`` with control characters escaped as ``repr`` does (``\\x1b``, ``\\n``): a
    value from a biller must not drive the operator's terminal (ESC sequences)."""
    return text if text.isprintable() else repr(text)[1:-1]


def explain(entry: Entry) -> str:
    """What is wrong with a quarantined row and what releases it, for on-call."""
    lines = [
        f"{printable(entry.entity)} {entry.source_system}:{printable(entry.source_key)}"
        f" ({entry.source_table},"
        f" version {entry.source_version}) is {entry.status}",
        f"  first seen {entry.first_seen:%Y-%m-%d %H:%M:%S%z}, last seen"
        f" {entry.last_seen:%Y-%m-%d %H:%M:%S%z}, {entry.times_seen} time(s),"
        f" batch {entry.batch_id}",
    ]
    for problem in entry.problems:
        # Redacted again: lines stored before redaction covered every form stay readable.
        value = problem.get("value")
        shown = redact_text(value) if isinstance(value, str) else value
        line = f"  - {problem['expectation']}: {problem.get('column')} = {shown!r}"
        if problem.get("converter"):
            line += f" ({problem['converter']}: {problem.get('reason')})"
        lines.append(line)
    if entry.status == RELEASED:
        lines.append(f"  released {entry.released_at} ({entry.release_reason})")
    elif all(p["expectation"].startswith("expect_parent_to_exist") for p in entry.problems):
        parents = ", ".join(f"{e} {k}" for e, k in entry.parent_keys.items()) or "its parent"
        lines.append(
            f"  releases itself when {parents} reaches the warehouse"
            + (" (its table is not captured that far yet)" if entry.status == PENDING else "")
        )
    else:
        lines.append(
            "  releases itself when a corrected version is committed in the source; or"
            f" `billing-sync quarantine release {entry.entity} '{printable(entry.source_key)}'`"
            " loads it as it is"
        )
    return "\n".join(lines)


def release(
    conn: psycopg.Connection[Any],
    catalogs: list[SourceCatalog],
    *,
    entity: str,
    keys: Sequence[str] | None,
    system: str | None = None,
) -> tuple[int, int | None]:
    """Load quarantined rows as they are (unvalidated) and mark them released.

    ``keys`` None releases every unreleased row of the entity. Returns (rows, batch id).
    The rows merge version-guarded under a new batch id; the cache catches up from the
    warehouse at its next apply.
    """
    columns = entities_of(catalogs).get(entity)
    if columns is None:
        raise LookupError(f"no entity {entity!r} in the catalogs")
    names = ", ".join(f'"{name}"' for name in columns.loaded)
    updates = ", ".join(f'"{name}" = EXCLUDED."{name}"' for name in columns.all)
    with conn.transaction():
        chosen = conn.execute(
            f"SELECT source_system, source_key, source_table FROM {QUARANTINE_TABLE}"
            " WHERE entity = %s AND status <> 'released'"
            " AND (%s::text[] IS NULL OR source_key = ANY(%s::text[]))"
            " AND (%s::text IS NULL OR source_system = %s) FOR UPDATE",
            (
                entity,
                None if keys is None else list(keys),
                None if keys is None else list(keys),
                system,
                system,
            ),
        ).fetchall()
        if not chosen:
            return 0, None
        _redact_payload(conn, catalogs, entity=entity, keys=keys, system=system)
        conn.execute(
            f"SELECT last_batch_id FROM {STATE_SCHEMA}.entity_state WHERE entity = %s FOR UPDATE",
            (entity,),
        )
        row = conn.execute(f"SELECT nextval('{STATE_SCHEMA}.batch_id_seq')").fetchone()
        assert row is not None
        batch_id = int(row[0])
        by_system: dict[str, list[str]] = {}
        for source_system, key, _ in chosen:
            by_system.setdefault(source_system, []).append(key)
        for source_system, system_keys in by_system.items():
            conn.execute(
                f"INSERT INTO {columns.table} AS t ({names}, _batch_id)"
                f" SELECT {names}, %s FROM {payload_table(entity)}"
                " WHERE _source_system = %s AND _source_key = ANY(%s)"
                f" ON CONFLICT (_source_system, _source_key) DO UPDATE SET {updates}"
                " WHERE t._source_version < EXCLUDED._source_version",
                (batch_id, source_system, system_keys),
            )
            mark_released(
                conn, entity, source_system, system_keys, batch_id=batch_id, reason=MANUAL
            )
        conn.execute(
            f"UPDATE {STATE_SCHEMA}.entity_state SET last_batch_id = %s WHERE entity = %s",
            (batch_id, entity),
        )
        system0, _, table0 = chosen[0]
        conn.execute(
            f"INSERT INTO {STATE_SCHEMA}.batch_log (batch_id, system, source_table, entity,"
            " horizon, rows_read, inserted, updated, deleted, run_id)"
            " VALUES (%s, %s, %s, %s, localtimestamp, %s, 0, 0, 0, 'quarantine-release')",
            (batch_id, system0, table0, entity, len(chosen)),
        )
    return len(chosen), batch_id


def redacted_columns(catalogs: list[SourceCatalog], entity: str) -> list[str]:
    """The entity's columns that some mapping redacts (explicitly or by default)."""
    return sorted({
        column.target
        for catalog in catalogs for mapping in catalog.tables if mapping.entity == entity
        for column in mapping.columns if column.protection == "redact"
    })  # fmt: skip


def _redact_payload(
    conn: psycopg.Connection[Any],
    catalogs: list[SourceCatalog],
    *,
    entity: str,
    keys: Sequence[str] | None,
    system: str | None,
) -> None:
    """Redact the stored rows about to be released, in place: a row quarantined before
    redaction covered every form (or before a column was redacted by default) must not
    load its card number in clear. Idempotent, so rows already redacted are unchanged."""
    table = payload_table(entity)
    for name in redacted_columns(catalogs, entity):
        column = f'"{name}"'
        rows = conn.execute(
            f"SELECT _source_system, _source_key, {column} FROM {table}"
            f" WHERE {column} IS NOT NULL AND (%s::text[] IS NULL OR _source_key = ANY(%s))"
            " AND (%s::text IS NULL OR _source_system = %s)",
            (None if keys is None else list(keys), None if keys is None else list(keys),
             system, system),
        ).fetchall()  # fmt: skip
        changed = [(redact_text(v), s, k) for s, k, v in rows if redact_text(v) != v]
        if changed:
            with conn.cursor() as cur:
                cur.executemany(
                    f"UPDATE {table} SET {column} = %s"
                    " WHERE _source_system = %s AND _source_key = %s",
                    changed,
                )


def purge_released(conn: psycopg.Connection[Any], *, older_than_seconds: float) -> int:
    """Forget released lines older than ``older_than_seconds`` (the retention job)."""
    result = conn.execute(
        f"DELETE FROM {QUARANTINE_TABLE} WHERE status = 'released'"
        " AND released_at < clock_timestamp() - make_interval(secs => %s)",
        (older_than_seconds,),
    )
    return result.rowcount
