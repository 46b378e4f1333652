"""The OpenAPI 3.1 document, built from the route table and the admin page's routes.

What a route does not declare is derived here, once for every route: its path parameters
from the names in its path, its error statuses from its policy, body, path and query, the
error envelope of every error status (its codes from server/errors.py), and the headers
that go with a status (Retry-After on 429 and 503).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from server.api import responses
from server.api.common import json_response
from server.api.spec import HEADERS, PATH_PARAMS, QUERY_PARAMS, Param, Reply, as_reply
from server.errors import ErrorCode
from server.middleware import SESSION_COOKIE

if TYPE_CHECKING:
    from server.api.routes import Route

_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{model}"
_WEBSOCKET_ONLY = frozenset(
    {ErrorCode.INVALID_OP, ErrorCode.APP_DELETED, ErrorCode.ENV_DELETED}
    | {ErrorCode.TOO_MANY_SUBSCRIPTIONS}
)

_DERIVED_DESCRIPTIONS = {
    400: "bad input: a path, query or body value (the code says which)",
    401: "no or bad credentials",
    403: "valid credentials without the right",
    404: "the app or env does not exist",
    413: "the request body is too large",
    500: "internal error; logged with the request id, which the message names",
    503: "the store or the coordinator is unavailable",
}


def path_params(path: str) -> list[str]:
    """The names of a path's parameters, in order."""
    return _PARAM.findall(path)


def error_statuses(route: Route) -> dict[int, str]:
    """The error statuses a route can answer whatever it declares, with a description each."""
    statuses = {500}
    if route.policy.needs_caller:
        statuses |= {401, 403, 503}
    if route.body is not None:
        statuses |= {400, 413}
    if path_params(route.path) or route.query:
        statuses.add(400)
    if "{app}" in route.path:
        statuses.add(404)
    return {status: _DERIVED_DESCRIPTIONS[status] for status in sorted(statuses)}


def replies(route: Route) -> dict[int, Reply]:
    """Every status of a route with its answer: the derived errors, then its own declarations."""
    answers = {status: Reply(text) for status, text in error_statuses(route).items()}
    for status, declared in route.responses.items():
        answers[status] = as_reply(status, declared)
    return dict(sorted(answers.items()))


def query_params(route: Route) -> list[Param]:
    """A route's query parameters: names from the shared table, or its own Params."""
    return [QUERY_PARAMS[q] if isinstance(q, str) else q for q in route.query]


def _error_schema(status: int) -> dict[str, Any]:
    codes = sorted(
        {e.code for e in ErrorCode if e.status == status and e not in _WEBSOCKET_ONLY}
        | {ErrorCode.for_status(status).code}
    )
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                },
            }
        },
    }


class _Schemas:
    """The component schemas the document refers to, generated together by pydantic."""

    def __init__(self, routes: Iterable[Route]) -> None:
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        for route in routes:
            if route.body is not None:
                wanted[(route.body, "validation")] = None
            for reply in replies(route).values():
                if reply.model is not None:
                    wanted[(reply.model, "serialization")] = None
        wanted[(responses.Error, "serialization")] = None
        refs, defs = models_json_schema(list(wanted), ref_template=_REF)
        self._refs = refs
        self.components: dict[str, Any] = dict(defs.get("$defs", {}))

    def body(self, model: type[BaseModel]) -> dict[str, Any]:
        return dict(self._refs[(model, "validation")])

    def answer(self, model: type[BaseModel]) -> dict[str, Any]:
        return dict(self._refs[(model, "serialization")])


def _headers(required: Iterable[str], optional: Iterable[str]) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for name in required:
        headers[name] = {"$ref": f"#/components/headers/{name}", "required": True}
    for name in optional:
        headers[name] = {"$ref": f"#/components/headers/{name}"}
    return headers


def _response(status: int, reply: Reply, schemas: _Schemas) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": reply.description}
    content: dict[str, Any] = {}
    if reply.model is not None:
        content["application/json"] = {"schema": schemas.answer(reply.model)}
    elif status >= 400 and not reply.bodiless:
        content["application/json"] = {"schema": {"$ref": f"#/components/schemas/Error{status}"}}
    for media_type, schema in reply.media.items():
        content[media_type] = {"schema": dict(schema)}
    if content:
        answer["content"] = content
    required = list(reply.headers)
    optional = list(reply.optional_headers)
    if status == 429:
        required.append("Retry-After")
    elif status == 503:
        optional.append("Retry-After")
    headers = _headers(required, optional)
    if headers:
        answer["headers"] = headers
    return answer


def _parameter(param: Param, where: str, required: bool) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": where,
        "required": required,
        "description": param.description,
        "schema": dict(param.schema),
    }


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    answers = replies(route)
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": {
            str(status): _response(status, reply, schemas) for status, reply in answers.items()
        },
    }
    parameters = [_parameter(PATH_PARAMS[name], "path", True) for name in path_params(route.path)]
    parameters += [_parameter(q, "query", q.required) for q in query_params(route)]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": not route.body_optional,
            "content": {"application/json": {"schema": schemas.body(route.body)}},
        }
    for link in route.links:
        answer = operation["responses"][str(link.status)]
        answer.setdefault("links", {})[link.name] = {
            "operationId": link.operation,
            "parameters": dict(link.parameters),
        }
    if route.policy.needs_caller:
        operation["security"] = [{"bearer": []}, {"session": []}]
        if route.policy.query_token:
            operation["security"].append({"query_token": []})
    return operation


_HTML = {"text/html": {"schema": {"type": "string"}}}
_SIGN_IN_FORM = {
    "application/x-www-form-urlencoded": {
        "schema": {
            "type": "object",
            "properties": {
                "username": {"type": "string"},
                "password": {"type": "string"},
                "csrf_token": {"type": "string"},
                "next": {"type": "string"},
            },
        }
    }
}
_SIGN_OUT_FORM = {
    "application/x-www-form-urlencoded": {
        "schema": {"type": "object", "properties": {"csrf_token": {"type": "string"}}}
    }
}
_REDIRECT = {
    "description": "to the page to show next",
    "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
}


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": _HTML}


PAGE_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/"): {
        "responses": {
            "200": _page("the admin page's shell"),
            "303": _REDIRECT,
            "500": _page("error page"),
        },
    },
    ("GET", "/login"): {
        "responses": {
            "200": _page("the sign-in form"),
            "303": _REDIRECT,
            "500": _page("error page"),
        },
    },
    ("POST", "/login"): {
        "requestBody": {"required": True, "content": _SIGN_IN_FORM},
        "responses": {
            "303": _REDIRECT,
            **{
                str(status): _page("the sign-in form again, saying why")
                for status in (400, 401, 403, 429, 503)
            },
            "413": _page("error page: the form is too large"),
            "500": _page("error page"),
        },
    },
    ("POST", "/logout"): {
        "requestBody": {"required": False, "content": _SIGN_OUT_FORM},
        "responses": {
            "303": _REDIRECT,
            "403": _page("error page: the form's CSRF token is missing or wrong"),
            "413": _page("error page: the form is too large"),
            "500": _page("error page"),
            "503": _page("error page: the store is unavailable"),
        },
    },
    ("GET", "/static/{path}"): {
        "parameters": [
            {
                "name": "path",
                "in": "path",
                "required": True,
                "description": "a file under static/",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"},
            }
        ],
        "responses": {
            "200": {
                "description": "the file",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            "403": _page("error page: outside static/"),
            "404": _page("error page: no such file"),
            "500": _page("error page"),
        },
    },
}
"""The admin page's routes (server/pages.py PAGE_ROUTES) as operations: HTML, forms, redirects."""


def _page_routes() -> tuple[tuple[str, str, str], ...]:
    """(method, path, summary) of the admin page's routes."""
    try:
        from server.pages import PAGE_ROUTES
    except ImportError:  # pragma: no cover - the page ships with the server
        return ()
    return PAGE_ROUTES


def _page_operation(method: str, path: str, summary: str) -> dict[str, Any]:
    described = PAGE_OPERATIONS.get((method, path), {"responses": {"200": _page("HTML")}})
    name = "page_" + (path.strip("/").split("/")[0] or "admin")
    return {
        "operationId": f"{method.lower()}_{name}",
        "summary": summary,
        "tags": ["admin page"],
        **described,
    }


def build_document(routes: Iterable[Route]) -> dict[str, Any]:
    """Every route of the server: the route table's, then the admin page's."""
    routes = tuple(routes)
    schemas = _Schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    statuses: set[int] = set()
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
        statuses |= {status for status in replies(route) if status >= 400}
    for method, path, summary in _page_routes():
        paths.setdefault(path, {})[method.lower()] = _page_operation(method, path, summary)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "configcenter",
            "version": "1",
            "description": (
                'Every error is `{"error":{"code","message"}}` (docs/api-notes.md lists the '
                "codes). A method a path does not take answers 405 `method_not_allowed` with "
                "`Allow` (components/responses/MethodNotAllowed)."
            ),
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "query_token": {"type": "apiKey", "in": "query", "name": "token"},
            },
            "schemas": {
                **schemas.components,
                **{f"Error{status}": _error_schema(status) for status in sorted(statuses | {405})},
            },
            "headers": dict(HEADERS),
            "responses": {
                "MethodNotAllowed": {
                    "description": "the path does not take this method",
                    "headers": _headers(["Allow"], []),
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error405"}}
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
