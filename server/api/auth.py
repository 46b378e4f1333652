"""Sign-in and API tokens."""

from __future__ import annotations

from aiohttp import web

from server.api.common import json_response, path_int, principal, read_body, services
from server.api.schemas import CreateTokenBody, LoginBody
from server.errors import AppError, ErrorCode

# A user name and a password fit in far less; anything larger is refused unread.
MAX_LOGIN_BODY_BYTES = 4096


async def login(request: web.Request) -> web.Response:
    """POST /api/v1/login: a session usable as a bearer token until it expires."""
    if request.content_length is None or request.content_length > MAX_LOGIN_BODY_BYTES:
        raise AppError(
            ErrorCode.TOO_LARGE,
            f"a sign-in needs a Content-Length of at most {MAX_LOGIN_BODY_BYTES} bytes",
        )
    body = await read_body(request, LoginBody)
    session = await services(request).auth.login(
        body.username, body.password, request.remote or "unknown"
    )
    return json_response({"token": session.secret, "expires_at": session.expires_at})


async def logout(request: web.Request) -> web.Response:
    """POST /api/v1/logout: end the caller's session."""
    await services(request).auth.logout(principal(request))
    return web.Response(status=204)


async def whoami(request: web.Request) -> web.Response:
    """GET /api/v1/me: who the caller is and what it may do."""
    caller = principal(request)
    return json_response(
        {
            "name": caller.name,
            "kind": caller.kind,
            "admin": caller.is_admin,
            "roles": {app: role.value for app, role in caller.roles.items()},
            "scopes": sorted(caller.scopes),
        }
    )


async def create_token(request: web.Request) -> web.Response:
    """POST /api/v1/tokens (admin): the secret is shown once."""
    body = await read_body(request, CreateTokenBody)
    token, secret = await services(request).auth.create_token(
        principal(request), body.name, body.scopes, body.expires_in
    )
    return json_response({**token.to_json(), "token": secret}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    """GET /api/v1/tokens (admin)."""
    tokens = await services(request).auth.list_tokens(principal(request))
    return json_response({"tokens": [t.to_json() for t in tokens]})


async def revoke_token(request: web.Request) -> web.Response:
    """DELETE /api/v1/tokens/{id} (admin): revoked on every replica, its sockets closed."""
    await services(request).auth.revoke_token(principal(request), path_int(request, "id"))
    return web.Response(status=204)
