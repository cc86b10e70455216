"""The analysts' views in the warehouse (PostgreSQL) and the DuckDB cache, schema ``serve``.

- ``serve.account_360``: one row per live billing account: customer, current balance,
  active products, last bill, last payment, open work orders.
- ``serve.daily_revenue``: billed, paid (posted payments) and adjusted per site and day.
- ``serve.payment_activity``: payments per site, day and method: posted and reversed
  counts and amounts, distinct accounts.

One SQL text per view (:mod:`billing_sync.serve.view_sql`) runs in both engines, so
they give the same answers. Soft-deleted rows (``_is_deleted``) are left out; both
billers are in every view (``source_system`` says which). The text is rendered for the
configured entities: an entity or column that no biller maps reads as typed NULLs, and
a view none of whose entities is mapped is not created (:func:`served_views`).

A view is only replaced when its rendered text changed (a digest kept as the view's
comment), so starting a run does not lock views that analysts are reading.
The engine creates them at :meth:`~billing_sync.engine.sync.SyncEngine.setup`; the cache's
are created again whenever the cache file's tables are (a new or rebuilt cache).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import psycopg

from billing_sync.column_types import sql_type
from billing_sync.entities import EntityColumns
from billing_sync.serve.view_sql import ACCOUNT_360, DAILY_REVENUE, INPUTS, PAYMENT_ACTIVITY
from billing_sync.sql import quote_ident

SERVE_SCHEMA = "serve"
_COMMENT_PREFIX = "billing-sync view "


@dataclass(frozen=True)
class View:
    name: str
    description: str
    sql: str  # with {entity} placeholders, see render_view
    entities: tuple[str, ...]  # what it reads, in the order of INPUTS

    @property
    def qualified(self) -> str:
        return f"{SERVE_SCHEMA}.{quote_ident(self.name)}"


def _view(name: str, description: str, sql: str) -> View:
    return View(name, description, sql, tuple(e for e in INPUTS if "{" + e + "}" in sql))


VIEWS: tuple[View, ...] = (
    _view(
        "account_360",
        "One row per billing account: customer, current balance, active products, "
        "last bill, last payment, open work orders.",
        ACCOUNT_360,
    ),
    _view(
        "daily_revenue",
        "Billed (bills' new charges), paid (posted payments) and adjusted per site and day.",
        DAILY_REVENUE,
    ),
    _view(
        "payment_activity",
        "Payments per site, day and method: posted and reversed counts and amounts.",
        PAYMENT_ACTIVITY,
    ),
)


def served_views(mapped: Iterable[str]) -> tuple[View, ...]:
    """The views a deployment mapping the entities ``mapped`` gets: those reading at least
    one of them. A system with no billing entity (a catalog of other tables only) adds
    none, and a deployment of only such systems has no ``serve`` views at all: a view
    over entities nobody maps would answer with nothing but typed NULLs.

    >>> [view.name for view in served_views(["payment"])]
    ['account_360', 'daily_revenue', 'payment_activity']
    >>> served_views(["network_element", "trouble_ticket"])
    ()
    """
    have = set(mapped)
    return tuple(view for view in VIEWS if have.intersection(view.entities))


def live_rows(entity: str, entities: Mapping[str, EntityColumns]) -> str:
    """The SELECT of an entity's live rows with the columns the views read.

    A column the entity lacks (or an entity no catalog maps) reads as typed NULLs; an
    absent entity has no rows.
    """
    needed = INPUTS[entity]
    columns = entities.get(entity)
    if columns is None:
        nulls = ", ".join(
            f"CAST(NULL AS {sql_type(kind)}) AS {quote_ident(name)}"
            for name, kind in (("_source_system", "text"), *needed)
        )
        return f"SELECT {nulls} WHERE false"
    have = dict(columns.business)
    selected = ["_source_system"]
    for name, kind in needed:
        if name not in have:
            selected.append(f"CAST(NULL AS {sql_type(kind)}) AS {quote_ident(name)}")
        elif have[name] != kind:
            selected.append(f"CAST({quote_ident(name)} AS {sql_type(kind)}) AS {quote_ident(name)}")
        else:
            selected.append(quote_ident(name))
    return f"SELECT {', '.join(selected)} FROM {columns.table} WHERE NOT _is_deleted"


def render_view(view: View, entities: Mapping[str, EntityColumns]) -> str:
    """The view's SELECT for these entities: the same text for PostgreSQL and DuckDB."""
    return view.sql.format(**{entity: live_rows(entity, entities) for entity in view.entities})


def _digest(text: str) -> str:
    return _COMMENT_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]


def create_warehouse_views(
    conn: psycopg.Connection[Any], entities: Mapping[str, EntityColumns]
) -> list[str]:
    """Create or replace the views in the warehouse; the names of those (re)created.

    The entity tables must exist (after :meth:`Warehouse.setup`).
    """
    changed = []
    with conn.transaction():
        # Several runs start at once (one per tier): one of them replaces the views.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('billing_sync.views'))")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SERVE_SCHEMA}")
        served = served_views(entities)
        for view in VIEWS:
            row = conn.execute(
                "SELECT obj_description(to_regclass(%s), 'pg_class')",
                (f"{SERVE_SCHEMA}.{view.name}",),
            ).fetchone()
            if view not in served:
                # One this product made for entities no catalog maps any more: drop it.
                if row is not None and str(row[0] or "").startswith(_COMMENT_PREFIX):
                    conn.execute(f"DROP VIEW IF EXISTS {view.qualified}")
                    changed.append(view.name)
                continue
            text = render_view(view, entities)
            if row is not None and row[0] == _digest(text):
                continue
            # DROP, not CREATE OR REPLACE: PostgreSQL refuses a replacement whose
            # columns differ from the old view's.
            conn.execute(f"DROP VIEW IF EXISTS {view.qualified}")
            conn.execute(f"CREATE VIEW {view.qualified} AS {text}")
            conn.execute(f"COMMENT ON VIEW {view.qualified} IS '{_digest(text)}'")
            changed.append(view.name)
    return changed


def create_cache_views(
    con: duckdb.DuckDBPyConnection, entities: Mapping[str, EntityColumns]
) -> list[str]:
    """Create or replace the views in the DuckDB cache (its entity tables must exist)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SERVE_SCHEMA}")
    present = dict(
        con.execute(
            "SELECT view_name, comment FROM duckdb_views() WHERE schema_name = ?", [SERVE_SCHEMA]
        ).fetchall()
    )
    changed = []
    served = served_views(entities)
    for view in VIEWS:
        if view not in served:
            if str(present.get(view.name) or "").startswith(_COMMENT_PREFIX):
                con.execute(f"DROP VIEW IF EXISTS {view.qualified}")
                changed.append(view.name)
            continue
        text = render_view(view, entities)
        if present.get(view.name) == _digest(text):
            continue
        con.execute(f"CREATE OR REPLACE VIEW {view.qualified} AS {text}")
        con.execute(f"COMMENT ON VIEW {view.qualified} IS '{_digest(text)}'")
        changed.append(view.name)
    return changed


def create_views(
    warehouse_conn: psycopg.Connection[Any],
    cache_con: duckdb.DuckDBPyConnection,
    entities: Mapping[str, EntityColumns],
) -> None:
    """The views in both engines (the serve step; the engine's setup calls the two parts)."""
    create_warehouse_views(warehouse_conn, entities)
    create_cache_views(cache_con, entities)
