"""Timestamps of ``billing.*`` as instants: finding a warehouse from before, and its upgrade.

Up to issue 14 the entity tables held each biller's wall time in ``timestamp`` columns:
``billing.payment.changed_at`` was America/Chicago time for ICOMS rows and UTC for Amdocs
rows. Now every business timestamp is a ``timestamptz`` (DESIGN §11). Set-up does not
convert an old warehouse by itself: one column holds several zones, told apart only by
each row's ``_source_system``, and the zone of a system is whatever its catalog says at
upgrade time (a wrong catalog zone would shift every row for good). It refuses, naming the
columns, and ``billing-sync upgrade-timestamps`` converts them row by row with the zone of
the row's own system, once the operator has checked the catalogs' ``timezone``.
``_source_version`` stays the biller's native stamp (lineage, compared with the watermark).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from billing_sync.config import SourceCatalog
from billing_sync.entities import ENTITY_SCHEMA, entities_of
from billing_sync.sql import qualified, quote_ident
from billing_sync.validate.quarantine import PAYLOAD_SCHEMA

UPGRADE_COMMAND = "billing-sync upgrade-timestamps"

_LOCAL_COLUMNS = (
    "SELECT table_schema, table_name, column_name FROM information_schema.columns"
    " WHERE table_schema = ANY(%s) AND table_name = ANY(%s) AND column_name = ANY(%s)"
    " AND data_type = 'timestamp without time zone' ORDER BY 1, 2, 3"
)


class LocalTimestamps(RuntimeError):
    """The warehouse still holds biller-local ``timestamp`` columns: upgrade first."""


def _timestamp_columns(catalogs: Sequence[SourceCatalog]) -> dict[str, list[str]]:
    return {
        entity: [name for name, kind in columns.business if kind == "timestamp"]
        for entity, columns in entities_of(list(catalogs)).items()
    }


def local_columns(
    conn: psycopg.Connection[Any], catalogs: Sequence[SourceCatalog]
) -> list[tuple[str, str, str]]:
    """``(schema, table, column)`` of business timestamps still typed ``timestamp``."""
    wanted = _timestamp_columns(catalogs)
    names = sorted({name for columns in wanted.values() for name in columns})
    rows = conn.execute(
        _LOCAL_COLUMNS, ([ENTITY_SCHEMA, PAYLOAD_SCHEMA], sorted(wanted), names)
    ).fetchall()
    return [(s, t, c) for s, t, c in rows if c in wanted.get(t, [])]


def check_no_local_timestamps(
    conn: psycopg.Connection[Any], catalogs: Sequence[SourceCatalog]
) -> None:
    found = local_columns(conn, catalogs)
    if found:
        named = ", ".join(f"{s}.{t}.{c}" for s, t, c in found[:6])
        more = f" and {len(found) - 6} more" if len(found) > 6 else ""
        raise LocalTimestamps(
            f"the warehouse holds biller-local timestamps from an earlier billing-sync"
            f" ({named}{more} are `timestamp`, not `timestamptz`). Check each catalog's"
            f" timezone, stop the sync, then run `{UPGRADE_COMMAND}` (docs/operations.md,"
            " 'Upgrading to UTC timestamps'): it converts each row with its own system's zone."
        )


def upgrade_statements(
    found: Sequence[tuple[str, str, str]], zones: Mapping[str, str]
) -> list[str]:
    """One ``ALTER TABLE`` per table: each column to ``timestamptz``, each row read in the
    zone of its ``_source_system`` (``zones``: system -> IANA zone; :func:`upgrade` first
    refuses a table holding rows of a system without one)."""
    by_table: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in found:
        by_table.setdefault((schema, table), []).append(column)
    whens = " ".join(
        f"WHEN {_literal(system)} THEN {{col}} AT TIME ZONE {_literal(zone)}"
        for system, zone in sorted(zones.items())
    )
    statements = []
    for (schema, table), columns in by_table.items():
        changes = ", ".join(
            f"ALTER COLUMN {quote_ident(c)} TYPE timestamptz USING CASE _source_system "
            + whens.replace("{col}", quote_ident(c))
            + " END"
            for c in columns
        )
        statements.append(f"ALTER TABLE {qualified(schema, table)} {changes}")
    return statements


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade(conn: psycopg.Connection[Any], catalogs: Sequence[SourceCatalog]) -> list[str]:
    """Convert every biller-local column, in one transaction; the statements run."""
    zones = {catalog.system: catalog.timezone for catalog in catalogs}
    with conn.transaction():
        found = local_columns(conn, catalogs)
        for schema, table in dict.fromkeys((s, t) for s, t, _ in found):
            systems = {row[0] for row in conn.execute(
                f"SELECT DISTINCT _source_system FROM {qualified(schema, table)}")}  # fmt: skip
            unknown = sorted(systems - set(zones))
            if unknown:
                raise LocalTimestamps(
                    f"{schema}.{table} holds rows of {unknown}, which no catalog of the"
                    " settings names: add their catalogs (systems) so that their zone is"
                    " known, then run the upgrade again; nothing was converted"
                )
        statements = upgrade_statements(found, zones)
        for statement in statements:
            conn.execute(statement)
    return statements


def cache_has_local_timestamps(path: Path, catalogs: Sequence[SourceCatalog]) -> bool:
    """Whether the DuckDB cache at ``path`` has a business timestamp typed ``TIMESTAMP``
    (from before the upgrade): it is then set aside and rebuilt from the warehouse."""
    if not path.exists():
        return False
    wanted = _timestamp_columns(catalogs)
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns()"
            " WHERE schema_name = ? AND data_type = 'TIMESTAMP'",
            [ENTITY_SCHEMA],
        ).fetchall()
    return any(column in wanted.get(table, []) for table, column in rows)


def set_cache_aside(path: Path) -> Path:
    """Move the cache file (and its WAL) aside; the next sync rebuilds it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.before-utc-{stamp}")
    os.replace(path, target)
    wal = Path(f"{path}.wal")
    if wal.exists():
        os.replace(wal, Path(f"{target}.wal"))
    return target
