"""``Authorization: Bearer <key>`` checked against the key ring; 401 without a valid key,
403 when the key lacks the route's scope. The key id (never the key) goes to the access
log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billing_sync.api.keys import ApiKey, KeyRing
from billing_sync.api.middleware import LOG_SLOT
from billing_sync.api.problems import ApiProblem

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (bsk_<id>_<secret>) issued with `billing-sync api key`.",
)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="billing-sync"'}


def require(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    # ``Depends(bearer)``: the scheme goes into the OpenAPI document (Swagger's Authorize).
    async def authorized(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKey:
        keys: KeyRing = request.app.state.keys
        key = keys.verify(credentials.credentials) if credentials is not None else None
        if key is None:
            raise ApiProblem(401, "unauthorized", "a valid API key is required", _CHALLENGE)
        slot = request.scope.get(LOG_SLOT)
        if slot is not None:
            slot["key_id"] = key.key_id
        if scope not in key.scopes:
            raise ApiProblem(403, "forbidden", f"the key {key.key_id} lacks the scope {scope}")
        return key

    return authorized
