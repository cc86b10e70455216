"""What ``check``, ``grants`` and ``catalog init`` ask of a source through its engine
adapter: the cursor indexes a catalog needs (and the ``CREATE INDEX`` for a missing one),
the minimal read-only grants, and a draft catalog from the reflected schema."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import NoSuchTableError

from billing_sync.config import SourceCatalog
from billing_sync.source.drafts import create_index_sql, draft_catalog, supporting_index
from billing_sync.source.engines import EngineAdapter, adapter_for

log = logging.getLogger(__name__)

DEFAULT_CAPTURE_USER = "billing_sync_capture"


def sqlalchemy_url(url: str) -> URL:
    """A source URL as SQLAlchemy reads it: a libpq ``postgresql://`` URL gets psycopg 3
    (SQLAlchemy's default PostgreSQL driver is psycopg2, which is not installed)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def source_adapter(url: str, *, timezone: str | None = None) -> EngineAdapter:
    adapter = adapter_for(sqlalchemy_url(url))
    adapter.timezone = timezone
    return adapter


@contextmanager
def connected(adapter: EngineAdapter) -> Iterator[Connection]:
    try:
        with adapter.connect() as connection:
            yield connection
    finally:
        adapter.dispose()


def missing_cursor_indexes(
    adapter: EngineAdapter, connection: Connection, catalog: SourceCatalog
) -> list[str]:
    """One warning per table whose cursor no index leads with, with the ``CREATE INDEX``
    a DBA would run. Capture still works without it, but every batch then reads the
    table (rows examined per captured row grow with the table)."""
    warnings = []
    for mapping in catalog.tables:
        if mapping.cursor_fallback:
            # COALESCE(cursor, fallback) is served by an expression index, which the
            # Inspector does not describe by column: EXPLAIN (the footprint tests) checks it.
            continue
        try:
            table = adapter.reflect(connection, mapping.table, schema=catalog.schema_name)
        except NoSuchTableError:
            continue  # check_catalog names missing tables
        cursor = mapping.cursor_columns
        if supporting_index(table, cursor) is not None:
            continue
        statement = create_index_sql(
            connection.dialect, schema=catalog.schema_name, table=mapping.table,
            cursor=cursor, key=mapping.key,
        )  # fmt: skip
        warnings.append(
            f"{adapter.name} {catalog.system}.{mapping.table}: no index leads with the cursor"
            f" {list(cursor)}; each batch reads the whole table. A DBA can run: {statement}"
        )
    return warnings


def grants_text(adapter: EngineAdapter, catalog: SourceCatalog, user: str) -> list[str]:
    """The minimal read-only grants of ``user`` on the catalog's tables, the horizon
    probe's included."""
    tables = [(catalog.schema_name, mapping.table) for mapping in catalog.tables]
    return adapter.grants(user, tables)


def draft(
    adapter: EngineAdapter, connection: Connection, *, system: str, schema: str | None,
    timezone: str,
) -> str:  # fmt: skip
    """A draft catalog of every table in ``schema`` (the URL's default when None)."""
    inspector = sa.inspect(connection)
    tables = [
        adapter.reflect(connection, name, schema=schema)
        for name in sorted(inspector.get_table_names(schema=schema))
    ]
    return draft_catalog(system, schema, tables, timezone=timezone, engine=adapter.name)
