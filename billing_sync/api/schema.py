"""The OpenAPI document as the API really answers: problems (every 4xx/5xx) documented as
``application/problem+json`` with the :class:`~billing_sync.api.problems.Problem` schema,
and FastAPI's default 422 removed (bad input is a 400 problem here); the bearer key scheme on
the routes that require a key (those answering 401)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from billing_sync.api.auth import SCHEME_NAME, SECURITY_SCHEME
from billing_sync.api.problems import PROBLEM_JSON, TITLES, Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": TITLES[status]} for status in statuses}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema()
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        components = document["components"]
        components.setdefault("securitySchemes", {})[SCHEME_NAME] = SECURITY_SCHEME
        for path in document.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if "401" in responses:  # the routes that require a key (require())
                    operation["security"] = [{SCHEME_NAME: []}]
                responses.pop("422", None)
                for status, response in responses.items():
                    if int(status) >= 400:
                        response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
