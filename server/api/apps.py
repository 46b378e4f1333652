"""Apps and envs."""

from __future__ import annotations

from aiohttp import web

from server.api.common import json_response, principal, read_body, services
from server.api.schemas import CreateAppBody, CreateEnvBody, PatchAppBody


async def list_apps(request: web.Request) -> web.Response:
    """GET /api/v1/apps."""
    apps = await services(request).apps.list_apps(principal(request))
    return json_response({"apps": [app.to_json() for app in apps]})


async def create_app(request: web.Request) -> web.Response:
    """POST /api/v1/apps."""
    body = await read_body(request, CreateAppBody)
    app = await services(request).apps.create_app(
        principal(request), body.name, body.description, body.envs
    )
    return json_response(app.to_json(), status=201)


async def get_app(request: web.Request) -> web.Response:
    """GET /api/v1/apps/{app}."""
    app = await services(request).apps.get_app(principal(request), request.match_info["app"])
    return json_response(app.to_json())


async def delete_app(request: web.Request) -> web.Response:
    """DELETE /api/v1/apps/{app}."""
    await services(request).apps.delete_app(principal(request), request.match_info["app"])
    return web.Response(status=204)


async def create_env(request: web.Request) -> web.Response:
    """POST /api/v1/apps/{app}/envs."""
    body = await read_body(request, CreateEnvBody)
    app = await services(request).apps.add_env(
        principal(request), request.match_info["app"], body.name
    )
    return json_response(app.to_json(), status=201)


async def update_app(request: web.Request) -> web.Response:
    """PATCH /api/v1/apps/{app}."""
    body = await read_body(request, PatchAppBody)
    app = await services(request).apps.update_app(
        principal(request), request.match_info["app"], body.description, body.anonymous_read
    )
    return json_response(app.to_json())


async def delete_env(request: web.Request) -> web.Response:
    """DELETE /api/v1/apps/{app}/envs/{env}."""
    await services(request).apps.delete_env(
        principal(request), request.match_info["app"], request.match_info["env"]
    )
    return web.Response(status=204)
