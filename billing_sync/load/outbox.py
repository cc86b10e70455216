"""The change-event outbox: the merge's changes, appended in the batch's own transaction.

Each batch that the warehouse commits also appends one event per entity row it changed to
``billing_sync.change_event``, in the same transaction as the rows and the watermark, so
the bus (``billing_sync.feed``) can never miss or invent a change the warehouse has (or has
not). The events are built by the merge statement itself: PostgreSQL 18's
``RETURNING old.*, new.*`` gives the warehouse's previous version of each row (``before``)
from the very statement whose version guard decided that the row changes, so a replayed
batch, which the guard turns away, writes no event (PostgreSQL docs, "INSERT", the
``RETURNING`` clause with ``OLD`` and ``NEW``).

The envelope uses Debezium's field names and semantics (``before``, ``after``, ``source``,
``op`` in c/u/d/r, ``ts_ms``), plus ``id``: the event id, taken under the entity's lock
(:meth:`~billing_sync.load.warehouse.Warehouse._lock_entity`), so the ids of one entity
are committed in increasing order and a relay can follow each entity by "every id above
the last one published". docs/change-events.md tells where it differs from Debezium.

The JSON is built once per row, as text: ``before`` and ``after`` by ``row_to_json`` over
the entity's own columns (no internal lineage), the envelope by ``json_build_object``, kept
in a ``json`` column and published as stored. ``jsonb`` cost twice as much server CPU per
event (``to_jsonb`` of the whole row, three key removals, then a nested
``jsonb_build_object`` that copies both rows again: measured in docs/change-events.md), and
nothing reads the outbox by key inside the JSON. Whether a write changed the row is a row
comparison of the same columns, not a JSON comparison.

Events are written only while a sink is registered in ``billing_sync.feed_sink`` (the
relays register theirs); ``r`` events for the rows a snapshot or backfill loads for the
first time only when a registered sink asks for them (``snapshot_events``): a first load of
millions of rows then costs the outbox nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from billing_sync.entities import STATE_SCHEMA, EntityColumns
from billing_sync.sql import quote_ident

EVENT_TABLE = f"{STATE_SCHEMA}.change_event"
SINK_TABLE = f"{STATE_SCHEMA}.feed_sink"
OFFSET_TABLE = f"{STATE_SCHEMA}.feed_offset"
EVENT_ID_SEQUENCE = f"{STATE_SCHEMA}.change_event_id_seq"

SNAPSHOT_KINDS = frozenset({"initial", "backfill"})
"""Batch kinds that read rows as they are (a snapshot or a backfill) rather than changes."""

INTERNAL_COLUMNS = ("_row_hash", "_batch_id", "_synced_at")
"""Lineage kept out of ``before``/``after``: the batch id is in ``source``, the row hash
and the write time describe the warehouse, not the row."""

OUTBOX_DDL = f"""
CREATE SEQUENCE IF NOT EXISTS {EVENT_ID_SEQUENCE};
CREATE TABLE IF NOT EXISTS {EVENT_TABLE} (
    event_id bigint PRIMARY KEY,
    entity text NOT NULL,
    source_key text NOT NULL,
    op char(1) NOT NULL,
    batch_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    envelope json NOT NULL
);
-- The envelope was jsonb before it was built as text (billing_sync.load.outbox): an outbox
-- of that time (short: retention) is converted once.
DO $$ BEGIN
    IF (SELECT atttypid FROM pg_attribute WHERE attrelid = '{EVENT_TABLE}'::regclass
        AND attname = 'envelope') = 'jsonb'::regtype THEN
        ALTER TABLE {EVENT_TABLE} ALTER COLUMN envelope TYPE json USING envelope::json;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS change_event_entity_ix ON {EVENT_TABLE} (entity, event_id);
CREATE TABLE IF NOT EXISTS {SINK_TABLE} (
    sink text PRIMARY KEY,
    kind text NOT NULL,
    snapshot_events boolean NOT NULL DEFAULT false,
    -- Events with an id at or below this were committed before the sink existed.
    start_event_id bigint NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Retention removed events this sink had not published (feed.retention_hours).
    expired_events bigint NOT NULL DEFAULT 0,
    expired_at timestamptz
);
CREATE TABLE IF NOT EXISTS {OFFSET_TABLE} (
    sink text NOT NULL REFERENCES {SINK_TABLE} ON DELETE CASCADE,
    entity text NOT NULL,
    published_id bigint NOT NULL,
    published_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (sink, entity)
);
"""


@dataclass(frozen=True)
class EventsWanted:
    """What the registered sinks ask of this batch."""

    snapshot_events: bool  # some sink wants ``r`` events for first-loaded rows


def events_wanted(conn: psycopg.Connection) -> EventsWanted | None:
    """None when no sink is registered (no event is written), inside the batch's
    transaction: a sink registered after it committed starts after its events anyway."""
    row = conn.execute(
        f"SELECT count(*), coalesce(bool_or(snapshot_events), false) FROM {SINK_TABLE}"
    ).fetchone()
    if row is None or not row[0]:
        return None
    return EventsWanted(snapshot_events=bool(row[1]))


def _event_columns(columns: EntityColumns) -> list[str]:
    """The columns ``before`` and ``after`` carry, in table order."""
    return [name for name in columns.all if name not in INTERNAL_COLUMNS]


def _row_json(columns: EntityColumns, alias: str) -> str:
    """The row ``alias`` as JSON text: a sub-select so that the keys are the column names
    (``json_build_object`` would cap an entity at 50 columns; ``row_to_json(alias)`` would
    carry the internal lineage, which ``json`` cannot remove)."""
    names = ", ".join(f"{alias}.{quote_ident(name)}" for name in _event_columns(columns))
    return f"(SELECT row_to_json(x) FROM (SELECT {names}) x)"


def _op(kind: str, wanted: EventsWanted) -> tuple[str, str]:
    """The ``op`` expression over ``was_missing``/``was_deleted``/``is_deleted``, and the
    condition that keeps an event (a write that changed nothing of the row is no event)."""
    if kind in SNAPSHOT_KINDS and wanted.snapshot_events:
        # Every row the snapshot wrote, unchanged ones too (a backfill rewrites an equal
        # version): a sink that asks for a snapshot gets all of it.
        return "'r'", "true"
    op = "CASE WHEN is_deleted THEN 'd' WHEN was_missing OR was_deleted THEN 'c' ELSE 'u' END"
    if kind in SNAPSHOT_KINDS:  # first reads of a key are ``r``, written only when asked
        return op, "NOT was_missing AND changed"
    return op, "changed"


def _insert_events(columns: EntityColumns, rows: str, op: str, keep: str) -> str:
    """``INSERT`` into the outbox from ``rows`` (``before_row``, ``after_row`` as JSON,
    ``was_missing``, ``was_deleted``, ``changed``, ``is_deleted``, ``_source_key``,
    ``_source_version``), with the system, the source table and the batch id bound as
    ``%s``."""
    envelope = (
        "json_build_object('id', event_id, 'op', op,"
        " 'before', before_row,"
        " 'after', CASE WHEN op = 'd' THEN NULL ELSE after_row END,"
        " 'source', json_build_object('connector', 'billing-sync', 'system', sys,"
        " 'table', source_table, 'entity', entity, 'key', _source_key,"
        " '_source_version', _source_version, 'batch_id', batch_id,"
        " 'snapshot', op = 'r'),"
        " 'ts_ms', (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
    )
    entity = columns.entity.replace("'", "''")
    return (
        f"INSERT INTO {EVENT_TABLE} (event_id, entity, source_key, op, batch_id, envelope)"
        f" SELECT event_id, entity, _source_key, op, batch_id, {envelope} FROM ("
        f" SELECT nextval('{EVENT_ID_SEQUENCE}') AS event_id, '{entity}'::text AS entity,"
        " p.sys, p.source_table, p.batch_id, e.* FROM ("
        f" SELECT {op} AS op, r.* FROM {rows} r WHERE {keep} ORDER BY r._source_key) e,"
        " (SELECT %s::text AS sys, %s::text AS source_table, %s::bigint AS batch_id) p"
        ") numbered"
    )


def merge_with_events(
    columns: EntityColumns, merge: str, *, kind: str, wanted: EventsWanted
) -> str:
    """``merge`` (from :func:`~billing_sync.load.merge_sql.build_merge` with ``old_new``)
    that also appends its changes to the outbox. Parameters: the merge's batch id, then
    system, source table, batch id. Returns what the merge returns (``is_new``,
    ``is_deleted``, ``_source_key``)."""
    op, keep = _op(kind, wanted)
    return (
        f"WITH merged AS ({merge}),"
        f" events AS ({_insert_events(columns, 'merged', op, keep)})"
        " SELECT is_new, is_deleted, _source_key FROM merged"
    )


def copied_events(columns: EntityColumns, *, kind: str, wanted: EventsWanted) -> str | None:
    """The outbox ``INSERT`` for a batch COPYed straight into the entity table (a bulk first
    load: every key is new), or None when no sink asks for its ``r`` events. Parameters:
    the batch's keys (a text array), system, batch id (the rows to read), then system,
    source table, batch id.

    The rows are found by their keys through the primary key: a first load into an empty
    entity runs without the ``_batch_id`` index (:mod:`billing_sync.load.entity_indexes`),
    and reading each chunk by batch id would scan the whole table so far, every chunk."""
    if kind not in SNAPSHOT_KINDS or not wanted.snapshot_events:
        return None
    rows = (
        f"(SELECT NULL::json AS before_row, {_row_json(columns, 't')} AS after_row,"
        " true AS was_missing, false AS was_deleted, true AS changed,"
        " t._is_deleted AS is_deleted, t._source_key, t._source_version"
        f" FROM unnest(%s::text[]) AS k(key) JOIN {columns.table} t"
        " ON t._source_system = %s AND t._source_key = k.key WHERE t._batch_id = %s)"
    )
    return _insert_events(columns, rows, "'r'", "true")


def old_new_returning(columns: EntityColumns) -> str:
    """What the merge returns when events are written: the rows before and after as JSON,
    and whether the write changed the row. (For an inserted key ``old`` is all NULL.)"""
    compared = _event_columns(columns)
    old = ", ".join(f"old.{quote_ident(name)}" for name in compared)
    new = ", ".join(f"new.{quote_ident(name)}" for name in compared)
    return (
        "(xmax = 0) AS is_new, new._is_deleted AS is_deleted, new._source_key,"
        " new._source_version, old._source_key IS NULL AS was_missing,"
        " coalesce(old._is_deleted, false) AS was_deleted,"
        f" ROW({old}) IS DISTINCT FROM ROW({new}) AS changed,"
        f" CASE WHEN old._source_key IS NULL THEN NULL ELSE {_row_json(columns, 'old')} END"
        f" AS before_row, {_row_json(columns, 'new')} AS after_row"
    )
