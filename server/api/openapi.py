"""The OpenAPI 3.1 document, built from the route table."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from server.api.common import json_response
from server.middleware import SESSION_COOKIE

if TYPE_CHECKING:
    from server.api.routes import Route

_PARAM = re.compile(r"{(\w+)}")


def _page_routes() -> tuple[tuple[str, str, str], ...]:
    """(method, path, summary) of the admin page's routes."""
    try:
        from server.pages import PAGE_ROUTES
    except ImportError:  # pragma: no cover - the page ships with the server
        return ()
    return PAGE_ROUTES


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": {
            str(status): {"description": text} for status, text in sorted(route.responses.items())
        },
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in route.query
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": route.body.model_json_schema(by_alias=True)}
            },
        }
    if route.policy.needs_caller:
        operation["security"] = [{"bearer": []}, {"session": []}]
        if route.policy.query_token:
            operation["security"].append({"query_token": []})
        operation["responses"].setdefault("401", {"description": "no or bad token"})
        operation["responses"].setdefault("403", {"description": "missing scope"})
    return operation


def build_document(routes: Iterable[Route]) -> dict[str, Any]:
    """Every route of the server: the route table's, then the admin page's."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    for method, path, summary in _page_routes():
        paths.setdefault(path, {})[method.lower()] = {
            "summary": summary,
            "tags": ["admin page"],
            "responses": {"200": {"description": "HTML"}},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "configcenter", "version": "1"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "query_token": {"type": "apiKey", "in": "query", "name": "token"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
        "paths": paths,
    }


async def get_openapi(request: web.Request) -> web.Response:
    """GET /api/openapi.json."""
    # Imported here: the route table lists this handler.
    from server.api.routes import ROUTES

    return json_response(build_document(ROUTES))
