"""The application: routes, and the translation of warehouse rows into response bodies.

Every answer about data carries ``data_as_of``/``age_seconds`` in its body and as the
headers ``Data-As-Of``/``Age-Seconds``. Inputs are typed and bounded (path patterns, page
sizes, cursor length); anything else is a 400 problem (:mod:`billing_sync.api.problems`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, Response

from billing_sync.api.auth import require
from billing_sync.api.config import DEFAULT_PAGE, MAX_PAGE, ApiConfig
from billing_sync.api.cursor import CursorCodec, CursorError
from billing_sync.api.docs import add_docs
from billing_sync.api.freshness import Caught, age_seconds, data_as_of
from billing_sync.api.keys import ACCOUNTS_READ, FRESHNESS_READ
from billing_sync.api.middleware import ApiMiddleware
from billing_sync.api.models import (
    Account,
    Activity,
    ActivityItem,
    Freshness,
    Health,
    Match,
    Ready,
    SearchResult,
    TableFreshness,
)
from billing_sync.api.problems import ApiProblem, install_handlers, no_unknown_query_parameters
from billing_sync.api.queries import Search
from billing_sync.api.schema import install_openapi, problem_responses
from billing_sync.api.shaping import account_body, national_id_tokens
from billing_sync.api.store import Store
from billing_sync.serve.views import VIEWS

ACCOUNT_ENTITIES = (*VIEWS[0].entities, "resource", "collection_step")
ACTIVITY_ENTITIES = ("payment", "adjustment", "bill_item")
SEARCH_ENTITIES = ("billing_account", "place", "resource", "payment", "customer")

SYSTEM = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="The biller.")]
ACCOUNT_ID = Annotated[
    str,
    Path(
        pattern=r"^(?:[A-Za-z0-9]{1,16}:)?[A-Za-z0-9_-]{1,32}$",
        description="SITE:ACCOUNT, or the account number alone when one site has it.",
    ),
]
TEXT = r"^[^\x00-\x1f\x7f]*$"  # no control characters (PostgreSQL text refuses NUL)
PROTECTED = problem_responses(400, 401, 403, 404)


def _fresh(
    response: Response, caught: list[Caught], systems: tuple[str, ...], entities: tuple[str, ...]
) -> dict[str, Any]:
    points = [data_as_of(caught, system, entities) for system in systems]
    as_of = None if not points or None in points else min(p for p in points if p is not None)
    age = age_seconds(as_of)
    response.headers["Data-As-Of"] = as_of.isoformat() if as_of else "none"
    response.headers["Age-Seconds"] = f"{age:.3f}" if age is not None else "none"
    return {"data_as_of": as_of, "age_seconds": age}


def create_app(config: ApiConfig) -> FastAPI:
    store = Store(config.warehouse_url, config.entities, config.feeds, max_size=config.pool_size)
    codec = CursorCodec(config.cursor_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(
        title="billing-sync account API",
        version="1",
        description="Read-only accounts for customer service, seconds behind the billers.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(no_unknown_query_parameters)],
    )
    app.state.keys = config.keys
    app.add_middleware(ApiMiddleware)
    install_handlers(app)
    install_openapi(app)
    add_docs(app)

    def known(system: str) -> str:
        if system not in config.systems:
            raise ApiProblem(404, "unknown-system", f"no biller {system!r} is configured here")
        return system

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """The process is up (no dependency checked)."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready, tags=["health"], responses=problem_responses(503))
    async def readyz() -> Ready:
        """The warehouse answers and every table is within its tier's SLA."""
        try:
            caught = await store.freshness()
        except Exception as error:
            raise ApiProblem(
                503, "not-ready", f"the warehouse does not answer ({type(error).__name__})"
            ) from None
        now = datetime.now(UTC)
        behind = [f"{c.feed.system}.{c.feed.table}" for c in caught if not c.within_sla(now)]
        if behind:
            raise ApiProblem(503, "not-ready", f"behind the SLA: {', '.join(sorted(behind))}")
        return Ready(status="ready", tables=len(caught))

    @app.get(
        "/v1/freshness",
        response_model=Freshness,
        tags=["freshness"],
        responses=problem_responses(401, 403),
    )
    async def freshness(
        response: Response, _key: Annotated[object, Depends(require(FRESHNESS_READ))]
    ) -> Freshness:
        """Per table: entity, tier, caught-up point (UTC) and lag against the tier's SLA."""
        caught = await store.freshness()
        now = datetime.now(UTC)
        tables = [
            TableFreshness(
                system=c.feed.system,
                table=c.feed.table,
                entity=c.feed.entity,
                tier=c.feed.tier,
                caught_up_to=c.caught_up_to,
                lag_seconds=None if (lag := c.lag_seconds(now)) is None else round(lag, 3),
                sla_seconds=c.feed.sla_seconds,
                within_sla=c.within_sla(now),
            )
            for c in sorted(caught, key=lambda c: (c.feed.system, c.feed.table))
        ]
        entities = tuple({c.feed.entity for c in caught})
        return Freshness(tables=tables, **_fresh(response, caught, config.systems, entities))

    @app.get(
        "/v1/accounts/search",
        response_model=SearchResult,
        tags=["accounts"],
        responses=problem_responses(400, 401, 403),
    )
    async def search(
        response: Response,
        _key: Annotated[object, Depends(require(ACCOUNTS_READ))],
        name: Annotated[
            str | None,
            Query(
                min_length=2,
                max_length=100,
                pattern=TEXT,
                description="Start of the account name (any case).",
            ),
        ] = None,
        postal_code: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9 -]{3,10}$")] = None,
        phone_last4: Annotated[str | None, Query(pattern=r"^[0-9]{4}$")] = None,
        card_last4: Annotated[str | None, Query(pattern=r"^[0-9]{4}$")] = None,
        national_id: Annotated[
            str | None,
            Query(
                pattern=r"^[0-9]{3}-?[0-9]{2}-?[0-9]{4}$",
                description="Matched by its HMAC token only.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=50)] = 20,
    ) -> SearchResult:
        """Find accounts; every criterion given must match. Protected columns are matched
        through their protected forms only: a national id by its HMAC token, a card or a
        phone by its last four digits."""
        tokens = None
        if national_id is not None:
            if config.hmac_key is None:
                raise ApiProblem(400, "no-hmac-key", "searching by national_id needs the HMAC key")
            tokens = national_id_tokens(config.hmac_key, national_id)
        criteria = Search(name, postal_code, phone_last4, card_last4, tokens)
        # No criterion matches nothing (every given one must match): an empty page.
        rows: list[dict[str, Any]]
        if not criteria.given():
            rows, caught = [], await store.freshness()
        else:
            rows, caught = await store.search(criteria, config.systems, limit)
        matches = [
            Match(
                system=r["system"],
                account_id=f"{r['site_id']}:{r['account_number']}",
                site_id=r["site_id"],
                account_number=r["account_number"],
                name=r["name"],
                status=r["status"],
            )
            for r in rows
        ]
        return SearchResult(
            matches=matches, **_fresh(response, caught, config.systems, SEARCH_ENTITIES)
        )

    @app.get(
        "/v1/accounts/{system}/{account_id}",
        response_model=Account,
        tags=["accounts"],
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def account(
        response: Response,
        system: SYSTEM,
        account_id: ACCOUNT_ID,
        _key: Annotated[object, Depends(require(ACCOUNTS_READ))],
    ) -> Account:
        """The account 360: the figures of ``serve.account_360`` with its services,
        equipment and collections steps."""
        site, number = _split(account_id)
        found, sections, caught = await store.account(known(system), site, number)
        _one(found, system, account_id)
        body = account_body(found[0], sections)
        return Account(
            **body, system=system, **_fresh(response, caught, (system,), ACCOUNT_ENTITIES)
        )

    @app.get(
        "/v1/accounts/{system}/{account_id}/activity",
        response_model=Activity,
        tags=["accounts"],
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def activity(
        response: Response,
        request: Request,
        system: SYSTEM,
        account_id: ACCOUNT_ID,
        _key: Annotated[object, Depends(require(ACCOUNTS_READ))],
        since: Annotated[date | None, Query(description="From this day on (inclusive).")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: Annotated[
            str | None,
            Query(
                max_length=1024,
                pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$",
                description="next_cursor of the previous page.",
            ),
        ] = None,
    ) -> Activity:
        """Payments, adjustments, charges and ledger lines in time order (day, kind, id),
        keyset-paginated: pass ``next_cursor`` back as ``cursor`` with the same query."""
        site, number = _split(account_id)
        if site is None:  # the activity needs the exact account: resolve its site first
            found, _, _ = await store.account(known(system), None, number)
            site = _one(found, system, account_id)["site_id"]
        scope = f"{known(system)}/{site}:{number}/{since}"
        after = None
        if cursor is not None:
            try:
                after = codec.decode(cursor, scope=scope)["after"]
            except (CursorError, KeyError, TypeError, ValueError) as error:
                raise ApiProblem(
                    400,
                    "bad-cursor",
                    str(error) if isinstance(error, CursorError) else "the cursor is malformed",
                ) from None
        page, caught = await store.activity(
            system, site, number, since=since, after=after, limit=limit
        )
        items = [ActivityItem(**{k: r[k] for k in ActivityItem.model_fields}) for r in page.rows]
        next_cursor = None
        if page.more and page.rows:
            last = page.rows[-1]
            position = [last["sort_day"].isoformat(), last["kind"], last["id"]]
            next_cursor = codec.encode({"after": position}, scope=scope)
        return Activity(
            system=system,
            account_id=f"{site}:{number}",
            items=items,
            next_cursor=next_cursor,
            **_fresh(response, caught, (system,), ACTIVITY_ENTITIES),
        )

    return app


def _split(account_id: str) -> tuple[str | None, str]:
    site, _, number = account_id.rpartition(":")
    return (site or None), number


def _one(found: list[dict[str, Any]], system: str, account_id: str) -> dict[str, Any]:
    if not found:
        raise ApiProblem(404, "unknown-account", f"no account {account_id} in {system}")
    if len(found) > 1:
        ids = ", ".join(f"{r['site_id']}:{r['account_number']}" for r in found)
        raise ApiProblem(
            409, "ambiguous-account", f"{account_id} is at several sites: use one of {ids}"
        )
    return found[0]
