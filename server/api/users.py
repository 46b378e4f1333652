"""Users and sign-in sessions."""

from __future__ import annotations

from aiohttp import web

from server.api.common import json_response, path_int, principal, read_body, services
from server.api.schemas import CreateUserBody, PasswordBody, PatchUserBody


def _name(request: web.Request) -> str:
    return request.match_info["name"]


async def list_users(request: web.Request) -> web.Response:
    """GET /api/v1/users (admin)."""
    users = await services(request).users.list_users(principal(request))
    return json_response({"users": [user.to_json() for user in users]})


async def create_user(request: web.Request) -> web.Response:
    """POST /api/v1/users (admin)."""
    body = await read_body(request, CreateUserBody)
    user = await services(request).users.add_user(
        principal(request), body.name, body.password, body.admin, body.roles
    )
    return json_response(user.to_json(), status=201)


async def get_user(request: web.Request) -> web.Response:
    """GET /api/v1/users/{name} (admin, or the user)."""
    user = await services(request).users.get_user(principal(request), _name(request))
    return json_response(user.to_json())


async def patch_user(request: web.Request) -> web.Response:
    """PATCH /api/v1/users/{name} (admin)."""
    body = await read_body(request, PatchUserBody)
    user = await services(request).users.update_user(
        principal(request), _name(request), body.admin, body.roles, body.disabled
    )
    return json_response(user.to_json())


async def set_password(request: web.Request) -> web.Response:
    """PUT /api/v1/users/{name}/password: own (with the current one), or an admin's reset."""
    body = await read_body(request, PasswordBody)
    await services(request).users.set_password(
        principal(request), _name(request), body.password, body.current
    )
    return web.Response(status=204)


async def delete_user(request: web.Request) -> web.Response:
    """DELETE /api/v1/users/{name} (admin)."""
    await services(request).users.delete_user(principal(request), _name(request))
    return web.Response(status=204)


async def list_sessions(request: web.Request) -> web.Response:
    """GET /api/v1/sessions?user=NAME: own sessions, or anyone's as an admin."""
    sessions = await services(request).auth.list_sessions(
        principal(request), request.query.get("user") or None
    )
    return json_response({"sessions": [s.session_json() for s in sessions]})


async def revoke_session(request: web.Request) -> web.Response:
    """DELETE /api/v1/sessions/{id}: own, or any as an admin."""
    await services(request).auth.revoke_session(principal(request), path_int(request, "id"))
    return web.Response(status=204)
