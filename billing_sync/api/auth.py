"""``Authorization: Bearer <key>`` checked against the key ring; 401 without a valid key,
403 when the key lacks the route's scope. The key id (never the key) goes to the access
log.

The header is read here rather than through FastAPI's ``HTTPBearer`` dependency: a nested
dependency is resolved anew on every request, and FastAPI's dependency resolution was the
largest cost of a request after the database. The scheme still is in the OpenAPI document
(:data:`SECURITY_SCHEME`, added by :mod:`billing_sync.api.schema`), so Swagger's
Authorize works as before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from billing_sync.api.keys import ApiKey, KeyRing
from billing_sync.api.middleware import LOG_SLOT
from billing_sync.api.problems import ApiProblem

SCHEME_NAME = "ApiKey"
SECURITY_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key (bsk_<id>_<secret>) issued with `billing-sync api key`.",
}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="billing-sync"'}


def _bearer(request: Request) -> str | None:
    """The credentials of ``Authorization: Bearer <credentials>`` (scheme in any case), as
    FastAPI's HTTPBearer reads them; None without them."""
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def require(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    async def authorized(request: Request) -> ApiKey:
        keys: KeyRing = request.app.state.keys
        credentials = _bearer(request)
        key = keys.verify(credentials) if credentials is not None else None
        if key is None:
            raise ApiProblem(401, "unauthorized", "a valid API key is required", _CHALLENGE)
        slot = request.scope.get(LOG_SLOT)
        if slot is not None:
            slot["key_id"] = key.key_id
        if scope not in key.scopes:
            raise ApiProblem(403, "forbidden", f"the key {key.key_id} lacks the scope {scope}")
        return key

    return authorized
