"""One env's settings."""

from __future__ import annotations

from aiohttp import web

from server.api.common import json_response, principal, read_body, services
from server.api.schemas import UpdateEnvBody


def _where(request: web.Request) -> tuple[str, str]:
    return request.match_info["app"], request.match_info["env"]


async def get_env(request: web.Request) -> web.Response:
    """GET /api/v1/apps/{app}/envs/{env}."""
    env = await services(request).envs.get_env(principal(request), *_where(request))
    return json_response(env.to_json())


async def update_env(request: web.Request) -> web.Response:
    """PATCH /api/v1/apps/{app}/envs/{env}."""
    body = await read_body(request, UpdateEnvBody)
    env = await services(request).envs.update_env(
        principal(request), *_where(request), body.approval_required
    )
    return json_response(env.to_json())
