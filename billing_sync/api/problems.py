"""Errors as ``application/problem+json`` (RFC 9457): a 4xx for every bad input, and a
500 that says nothing of the code (the traceback goes to the log, masked).

The ``type`` is a stable URN per kind of problem, ``title`` a fixed sentence, ``detail``
what was wrong with this request (never a secret, never a stack trace).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from billing_sync.secrets import mask_secrets

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("billing_sync.api")

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Ambiguous",
    500: "Internal error",
    503: "Not ready",
}


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str


class ApiProblem(Exception):
    def __init__(
        self, status: int, kind: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.headers = status, kind, detail, headers


def problem_response(
    status: int, kind: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "type": f"urn:billing-sync:problem:{kind}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    return Response(json.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_raw(
    status: int, kind: str, detail: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The same problem for ASGI middleware (status, headers, body)."""
    response = problem_response(status, kind, detail)
    return status, [(k, v) for k, v in response.raw_headers], bytes(response.body)


def _where(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part not in ("query", "path", "header"))


async def _validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    # The reason per parameter, without pydantic's echo of the input (it could be long,
    # or something the client should not have sent).
    reasons = [
        f"{_where(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in error.errors()
    ]
    return problem_response(400, "invalid-parameter", "; ".join(reasons)[:500])


async def _api_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiProblem)
    return problem_response(error.status, error.kind, error.detail, error.headers)


async def _http(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    kinds = {404: "not-found", 405: "method-not-allowed"}
    detail = error.detail if isinstance(error.detail, str) else TITLES.get(error.status_code, "")
    headers = dict(error.headers) if error.headers else None
    return problem_response(
        error.status_code, kinds.get(error.status_code, "http"), detail, headers
    )


async def _unexpected(request: Request, error: Exception) -> Response:
    log.error("%s %s failed: %s", request.method, request.url.path, mask_secrets(repr(error)))
    return problem_response(500, "internal", "the server failed; the log says why")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


async def no_unknown_query_parameters(request: Request) -> None:
    """A query parameter the route does not declare is a 400, not silently ignored: a
    misspelt filter (``?postcode=``) must not answer as if no filter had been given.

    ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per
    request that cost more than the check."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    declared = set(_query_names(dependant))
    unknown = sorted(set(request.query_params.keys()) - declared)
    if unknown:
        names = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise ApiProblem(400, "unknown-parameter", f"unknown query parameter(s): {names}")


def _query_names(dependant: Any) -> list[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = [param.alias for param in dependant.query_params]
    for sub in dependant.dependencies:
        names += _query_names(sub)
    return names
