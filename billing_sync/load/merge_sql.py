"""The warehouse merge as SQL text, from pure builders (the text is asserted in unit tests).

A batch is copied into a temporary table shaped like the entity table, then merged by one
``INSERT ... ON CONFLICT (_source_system, _source_key) DO UPDATE ... WHERE <guard>``; the
guard keeps a replayed or out-of-order batch from changing anything (DESIGN §6).
Identifiers are quoted with :func:`~billing_sync.sql.quote_ident`; the batch id is the
one bind parameter.
"""

from __future__ import annotations

from billing_sync.entities import STATE_SCHEMA, EntityColumns
from billing_sync.sql import quote_ident

NEWER_OR_CHANGED_AT_EQUAL_VERSION = (
    "t._source_version < EXCLUDED._source_version"
    " OR (t._source_version = EXCLUDED._source_version"
    " AND (t._row_hash, t._is_deleted) IS DISTINCT FROM (EXCLUDED._row_hash, EXCLUDED._is_deleted))"
)
"""The merge guard. A newer version always wins. An equal version with another content
wins too: with second-resolution stamps, a snapshot can read a row in the second it is
being written, and a second write within that second keeps the stamp (the tail reads
it once the second is settled, see :mod:`billing_sync.capture.window`). Reads of one
table apply in the order they were taken, so the later read of an equal version is the
more recent content. Identical content is skipped, so a replay writes nothing."""

REPLACE_EQUAL_VERSION = "t._source_version <= EXCLUDED._source_version"
"""The guard of a repair: an equal version is written again (verify found it differs)."""

LATER_READ = "true"
"""The guard of :meth:`~billing_sync.load.warehouse.Warehouse.commit_read`: the read is the
latest, so it replaces the row whatever its version (a source stamp that went backwards,
DESIGN §11) and even when the lineage looks equal (verify hashes the columns: a row edited
in the warehouse keeps its ``_row_hash``)."""

READ_AHEAD_KIND = "read_ahead"
"""The batch log's ``kind`` of a read-ahead batch (:mod:`billing_sync.engine.read_ahead`)."""


def later_read_over_read_ahead(read_after_batch: int) -> str:
    """The guard of a batch whose read started after the entity's batch ``read_after_batch``
    committed: the usual :data:`NEWER_OR_CHANGED_AT_EQUAL_VERSION`, or a row that a
    read-ahead wrote (batch log ``kind``) no later than that batch, with any other content.

    A read-ahead reads above the horizon, where a stamp taken at transaction start can be
    newer than the content that will win (DESIGN §11): it may load B's row stamped :01 while
    A, stamped :00, has yet to commit. Reads of one table are ordered in time, so a read
    that started after the read-ahead committed holds the truer content whatever the stamps
    say. A read-ahead committed later than ``read_after_batch`` may have read after this
    batch did: for its rows the version guard alone decides. The sub-select runs only for a
    row whose version the usual guard refuses (a PRIMARY KEY lookup in the batch log).

    >>> print(later_read_over_read_ahead(41))  # doctest: +NORMALIZE_WHITESPACE
    (t._source_version < EXCLUDED._source_version OR (t._source_version =
    EXCLUDED._source_version AND (t._row_hash, t._is_deleted) IS DISTINCT FROM
    (EXCLUDED._row_hash, EXCLUDED._is_deleted))) OR (t._batch_id <= 41 AND
    (t._source_version, t._row_hash, t._is_deleted) IS DISTINCT FROM
    (EXCLUDED._source_version, EXCLUDED._row_hash, EXCLUDED._is_deleted) AND EXISTS
    (SELECT 1 FROM billing_sync.batch_log AS b WHERE b.batch_id = t._batch_id
    AND b.kind = 'read_ahead'))
    """
    bound = int(read_after_batch)  # an integer from the warehouse's own state; never text
    return (
        f"({NEWER_OR_CHANGED_AT_EQUAL_VERSION})"
        f" OR (t._batch_id <= {bound}"
        " AND (t._source_version, t._row_hash, t._is_deleted) IS DISTINCT FROM"
        " (EXCLUDED._source_version, EXCLUDED._row_hash, EXCLUDED._is_deleted)"
        f" AND EXISTS (SELECT 1 FROM {STATE_SCHEMA}.batch_log AS b"
        f" WHERE b.batch_id = t._batch_id AND b.kind = '{READ_AHEAD_KIND}'))"
    )


def _names(columns: list[str]) -> str:
    return ", ".join(quote_ident(name) for name in columns)


def build_incoming_table(columns: EntityColumns, incoming: str) -> str:
    """A temporary table ``incoming`` with the columns a batch brings, dropped at commit."""
    return (
        f"CREATE TEMP TABLE {incoming} ON COMMIT DROP AS SELECT {_names(columns.loaded)}"
        f" FROM {columns.table} WITH NO DATA"
    )


def build_merge(
    columns: EntityColumns,
    incoming: str,
    *,
    replace_equal: bool = False,
    guard: str | None = None,
    returning: str = "(xmax = 0), _is_deleted, _source_key",
) -> str:
    """Merge ``incoming`` into the entity table with ``_batch_id`` bound as ``%s``.

    Returns one row per row written: whether it was inserted (``xmax = 0``), whether it
    is a delete, and its ``_source_key``. ``guard``: one of this module's guards, when not
    the one ``replace_equal`` picks. ``returning``: another ``RETURNING`` list (the
    outbox's, :func:`~billing_sync.load.outbox.old_new_returning`).
    """
    names = _names(columns.loaded)
    updates = ", ".join(
        f"{quote_ident(name)} = EXCLUDED.{quote_ident(name)}" for name in columns.all
    )
    if guard is None:
        guard = REPLACE_EQUAL_VERSION if replace_equal else NEWER_OR_CHANGED_AT_EQUAL_VERSION
    return (
        f"INSERT INTO {columns.table} AS t ({names}, _batch_id)"
        f" SELECT {names}, %s FROM {incoming}"
        f" ON CONFLICT (_source_system, _source_key) DO UPDATE SET {updates}"
        f" WHERE {guard}"
        f" RETURNING {returning}"
    )
