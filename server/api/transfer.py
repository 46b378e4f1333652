"""Export and import: an app as a document, a file into one env's draft."""

from __future__ import annotations

from aiohttp import web

from server.api.common import json_response, principal, read_body, services
from server.api.schemas import ExportDocumentBody
from server.errors import AppError, ErrorCode


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    """A query parameter that takes one of a few words, or a 400."""
    value = request.query.get(name, default)
    if value not in allowed:
        shown = value[:40]
        raise AppError(
            ErrorCode.INVALID_REQUEST, f"{name} must be one of {', '.join(allowed)}, not {shown!r}"
        )
    return value


async def export_app(request: web.Request) -> web.Response:
    """GET /api/v1/apps/{app}/export[?secrets=include]."""
    secrets = _choice(request, "secrets", ("include", "omit"), "omit")
    document = await services(request).transfer.export_app(
        principal(request), request.match_info["app"], include_secrets=secrets == "include"
    )
    return json_response(document)


async def import_app(request: web.Request) -> web.Response:
    """POST /api/v1/apps/import?mode=create|merge: an export document, all or none."""
    mode = _choice(request, "mode", ("create", "merge"), "create")
    body = await read_body(request, ExportDocumentBody)
    app, outcomes = await services(request).transfer.import_app(
        principal(request), body.model_dump(), mode
    )
    envs = {env: outcome.to_json() for env, outcome in outcomes.items()}
    return json_response({"app": app, "envs": envs}, status=201 if mode == "create" else 200)


async def import_env(request: web.Request) -> web.Response:
    """POST …/envs/{env}/import?format=&mode=merge|replace&dry_run=true: the body is the file."""
    fmt = _choice(request, "format", ("json", "properties", "yaml", "dotenv"), "json")
    mode = _choice(request, "mode", ("merge", "replace"), "merge")
    dry_run = _choice(request, "dry_run", ("true", "false"), "false") == "true"
    data = await request.read()
    revision, outcome = await services(request).transfer.import_env(
        principal(request),
        request.match_info["app"],
        request.match_info["env"],
        fmt,
        data,
        mode,
        dry_run,
    )
    return json_response({"draft_revision": revision, **outcome.to_json()})
