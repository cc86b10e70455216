"""The API's reads of the warehouse: a pool of read-only sessions, one snapshot per request.

Every session is read-only (``default_transaction_read_only``) with a statement timeout;
a request's statements run in one REPEATABLE READ transaction, so the watermarks it
reports (:mod:`billing_sync.api.freshness`) are those of the rows it returns. Only the
columns the serve view and the entity tables hold are read: what the protection policy
let into the warehouse (tokens, last-4s, redacted text), nothing else.

PostgreSQL settings used: ``default_transaction_read_only``, ``statement_timeout``,
``default_transaction_isolation`` (https://www.postgresql.org/docs/current/runtime-config-client.html).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from billing_sync.api.freshness import Caught, TableFeed, to_utc
from billing_sync.api.queries import (
    SECTIONS,
    WATERMARKS,
    WATERMARKS_OF,
    Search,
    account_sql,
    activity_sql,
    search_sql,
    with_watermarks,
)
from billing_sync.entities import EntityColumns
from billing_sync.serve.views import served_views

STATEMENT_TIMEOUT_MS = 5000
SESSION_OPTIONS = (
    "-c default_transaction_read_only=on"
    f" -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    " -c default_transaction_isolation=repeatable\\ read"
    " -c application_name=billing-sync-api"
)


@dataclass(frozen=True)
class ActivityPage:
    rows: list[dict[str, Any]]
    more: bool


async def _rows(
    conn: AsyncConnection[Any], sql: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(sql, params)
        return await cursor.fetchall()


class Store:
    def __init__(
        self,
        url: str,
        entities: Mapping[str, EntityColumns],
        feeds: Mapping[tuple[str, str], TableFeed],
        *,
        max_size: int = 10,
    ) -> None:
        self.entities = entities
        self.feeds = feeds
        # No billing entity mapped (a plain table's system): no account view, no accounts.
        self.has_accounts = any(view.name == "account_360" for view in served_views(entities))
        # Rendered once: the text depends on the catalogs only.
        self.account_sql = account_sql(entities) if self.has_accounts else ""
        self.activity_sql = {
            (since, after): with_watermarks(activity_sql(entities, since=since, after=after))
            for since in (False, True)
            for after in (False, True)
        }
        self.pool = AsyncConnectionPool(
            url,
            min_size=2,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True, "options": SESSION_OPTIONS},
            name="billing-sync-api",
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def ping(self) -> None:
        async with self.pool.connection(timeout=5) as conn:
            await conn.execute("SELECT 1")

    async def _watermarks(
        self, conn: AsyncConnection[Any], system: str | None = None
    ) -> list[Caught]:
        if system is None:
            return self._caught(await _rows(conn, WATERMARKS))
        return self._caught(await _rows(conn, WATERMARKS_OF, {"system": system}))

    def _caught(self, rows: list[dict[str, Any]]) -> list[Caught]:
        caught = []
        for row in rows:
            feed = self.feeds.get((row["system"], row["source_table"]))
            if feed is not None:  # a table of a biller no longer configured: not ours
                caught.append(Caught(feed, to_utc(row["caught_up_to"], feed.zone)))
        return caught

    def _watermark_arrays(self, system: str, row: dict[str, Any]) -> list[Caught]:
        """The watermarks a one-statement read returned as two parallel arrays."""
        tables, points = row.pop("_wm_tables") or [], row.pop("_wm_points") or []
        return self._caught(
            [
                {"system": system, "source_table": table, "caught_up_to": point}
                for table, point in zip(tables, points, strict=True)
            ]
        )

    async def freshness(self) -> list[Caught]:
        async with self.pool.connection() as conn:
            return await self._watermarks(conn)

    async def account(
        self, system: str, site_id: str | None, account_number: str
    ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], list[Caught]]:
        """The account's ``serve.account_360`` rows (one, or one per site when no site was
        given), its sections (services, equipment, collections) and the watermarks."""
        if not self.has_accounts:
            return [], {}, await self.freshness()
        # One statement (account_sql): one round trip and one snapshot, so no transaction;
        # it replaced five statements in a pipelined transaction, whose round trips and
        # per-statement bookkeeping were most of the API's CPU per request.
        account = {"system": system, "site": site_id, "account": account_number}
        async with self.pool.connection() as conn:
            found = await _rows(conn, self.account_sql, account)
        sections: dict[str, list[dict[str, Any]]] = {}
        caught: list[Caught] = []
        if len(found) == 1:
            row = found[0]
            sections = {section.name: row.pop(section.name) for section in SECTIONS}
            caught = self._watermark_arrays(system, row)
        return found, sections, caught

    async def activity(
        self,
        system: str,
        site_id: str,
        account_number: str,
        *,
        since: date | None,
        after: Sequence[Any] | None,
        limit: int,
    ) -> tuple[ActivityPage, list[Caught]]:
        sql = self.activity_sql[(since is not None, after is not None)]
        params: dict[str, Any] = {
            "system": system,
            "site": site_id,
            "account": account_number,
            "since": since,
            "limit": limit + 1,
        }
        if after is not None:
            params.update(
                after_day=date.fromisoformat(after[0]), after_kind=after[1], after_id=after[2]
            )
        # One statement, as for the account: the page and the watermarks in one snapshot.
        async with self.pool.connection() as conn:
            found = await _rows(conn, sql, params)
        caught = self._watermark_arrays(system, found[0]) if found else []
        rows = [row for row in found if row["kind"] is not None]
        return ActivityPage(rows[:limit], more=len(rows) > limit), caught

    async def search(
        self, search: Search, systems: Sequence[str], limit: int
    ) -> tuple[list[dict[str, Any]], list[Caught]]:
        sql, params = search_sql(self.entities, search, systems, limit)
        async with self.pool.connection() as conn, conn.transaction():
            caught = await self._watermarks(conn)
            rows = await _rows(conn, sql, params)
        return rows, caught
