"""An app's Apollo access keys (owner): the secrets Apollo clients sign their reads with."""

from __future__ import annotations

from aiohttp import web

from server.api.common import json_response, path_int, principal, services


async def list_access_keys(request: web.Request) -> web.Response:
    """GET /api/v1/apps/{app}/access-keys: never the secrets."""
    keys = await services(request).access_keys.list_keys(
        principal(request), request.match_info["app"]
    )
    return json_response({"access_keys": [key.to_json() for key in keys]})


async def create_access_key(request: web.Request) -> web.Response:
    """POST /api/v1/apps/{app}/access-keys: the secret is shown once."""
    key, secret = await services(request).access_keys.create_key(
        principal(request), request.match_info["app"]
    )
    return json_response({"id": key.id, "secret": secret, "created_at": key.created_at}, 201)


async def delete_access_key(request: web.Request) -> web.Response:
    """DELETE /api/v1/apps/{app}/access-keys/{id}."""
    await services(request).access_keys.delete_key(
        principal(request), request.match_info["app"], path_int(request, "id")
    )
    return web.Response(status=204)
