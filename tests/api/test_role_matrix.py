"""Every route, called by every kind of caller, answers as the contract's role table says.

The expectations are written here from the contract (/api/v1 Auth and Routes), not taken from
the server's own tables: NEEDS says what each route needs, CALLERS what each caller has.
A route added to the server without a row here fails `test_every_route_is_in_the_matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from server.api.routes import ROUTES
from server.keys import STORE
from tests.api.helpers import Api

PASSWORD = "matrix-password-1"
ENV = "/api/v1/apps/{app}/envs/{env}"

# What a caller has on app "shop" (the contract's table); "admin" is everything.
VIEWER = {"read_config", "view"}
EDITOR = VIEWER | {"edit"}
PUBLISHER = EDITOR | {"publish", "see_secrets"}
OWNER = PUBLISHER | {"manage"}
EVERYTHING = OWNER | {"admin"}


@dataclass(frozen=True)
class Caller:
    """One kind of caller and what it may do on app shop; None: its credential is dead."""

    name: str
    has: frozenset[str] | None


CALLERS = (
    Caller("viewer", frozenset(VIEWER)),
    Caller("editor", frozenset(EDITOR)),
    Caller("publisher", frozenset(PUBLISHER)),
    Caller("owner", frozenset(OWNER)),
    Caller("admin", frozenset(EVERYTHING)),
    Caller("read token", frozenset({"read_config", "see_secrets"})),
    Caller("write token", frozenset(PUBLISHER)),
    Caller("disabled user", None),
    Caller("expired token", None),
)


@dataclass(frozen=True)
class Need:
    """What a route needs ("public", "caller", "admin" or a permission on shop), and a request
    that reaches the permission check without destroying what later calls use."""

    need: str
    path: dict[str, str]
    body: Any = None
    query: str = ""


SHOP = {"app": "shop", "env": "prod"}
EXPORT_DOCUMENT = {
    "kind": "configcenter.export",
    "version": 1,
    "exported_at": "2026-01-01T00:00:00.000000Z",
    "app": "shop",
    "description": "",
    "envs": {},
}
# Keyed by the route's handler name (Route.name).
NEEDS: dict[str, Need] = {
    "get_config": Need("read_config", SHOP),
    "list_instances": Need("view", SHOP),
    "healthz": Need("public", {}),
    "readyz": Need("public", {}),
    "get_metrics": Need("public", {}),
    "login": Need("public", {}, {"username": "viewer", "password": PASSWORD}),
    "logout": Need("caller", {}),
    "whoami": Need("caller", {}),
    "create_token": Need("admin", {}, {"name": "made", "scopes": ["read:shop"]}),
    "list_tokens": Need("admin", {}),
    "revoke_token": Need("admin", {"id": "999999"}),
    "list_users": Need("admin", {}),
    "create_user": Need("admin", {}, {"name": "made", "password": PASSWORD}),
    "get_user": Need("admin", {"name": "nobody"}),
    "patch_user": Need("admin", {"name": "nobody"}, {"disabled": True}),
    "set_password": Need("admin", {"name": "nobody"}, {"password": PASSWORD}),
    "delete_user": Need("admin", {"name": "nobody"}),
    "list_sessions": Need("caller", {}),
    "revoke_session": Need("caller", {"id": "999999"}),
    "list_apps": Need("caller", {}),
    "create_app": Need("admin", {}, {"name": "made"}),
    "get_app": Need("read_config", {"app": "shop"}),
    "delete_app": Need("admin", {"app": "ghost"}),
    "create_env": Need("manage", {"app": "shop"}, {"name": "made"}),
    "list_access_keys": Need("manage", {"app": "shop"}),
    "create_access_key": Need("manage", {"app": "shop"}),
    "delete_access_key": Need("manage", {"app": "shop", "id": "999999"}),
    "update_app": Need("manage", {"app": "shop"}, {"description": "matrix"}),
    "delete_env": Need("manage", {"app": "shop", "env": "ghost"}),
    "discard_draft": Need("edit", SHOP),
    "export_app": Need("manage", {"app": "shop"}),
    "import_app": Need("admin", {}, EXPORT_DOCUMENT, query="mode=merge"),
    "import_env": Need("edit", SHOP, {"k": "imported"}, query="format=json&dry_run=true"),
    "list_items": Need("view", SHOP),
    "patch_items": Need("edit", SHOP, {"delete": ["missing"]}),
    "get_item": Need("view", {**SHOP, "key": "k"}),
    "put_item": Need("edit", {**SHOP, "key": "k"}, {"value": "v"}),
    "delete_item": Need("edit", {**SHOP, "key": "missing"}),
    "get_diff": Need("view", SHOP),
    "publish_release": Need("publish", SHOP, {"comment": "matrix"}),
    "list_releases": Need("view", SHOP),
    "get_release": Need("view", {**SHOP, "version": "1"}),
    "rollback_release": Need("publish", {**SHOP, "version": "1"}, {"comment": "matrix"}),
    "watch": Need("read_config", {}, query="app=shop&env=prod"),
    "get_cluster": Need("admin", {}),
    "list_audit": Need("view", {}, query="app=shop"),
    "get_openapi": Need("public", {}),
    # env settings and release requests (an unknown request id: 404 after the check)
    "get_env": Need("view", SHOP),
    "update_env": Need("manage", SHOP, {"approval_required": False}),
    "list_release_requests": Need("view", SHOP),
    "create_release_request": Need("edit", SHOP, {"comment": "matrix", "rollback_to": 999999}),
    "get_release_request": Need("view", {**SHOP, "id": "999999"}),
    "approve_release_request": Need("publish", {**SHOP, "id": "999999"}, {}),
    "reject_release_request": Need("publish", {**SHOP, "id": "999999"}, {}),
    "withdraw_release_request": Need("view", {**SHOP, "id": "999999"}),
    # gray releases: a stale draft_revision (409) or no gray release (404) after the check
    "get_gray": Need("view", SHOP),
    "preview_gray": Need("view", SHOP, {"rule": {"percent": 5}}),
    "start_gray": Need(
        "publish", SHOP, {"comment": "matrix", "rule": {"percent": 5}, "draft_revision": 999999}
    ),
    "widen_gray": Need("publish", SHOP, {"rule": {"percent": 50}}),
    "promote_gray": Need("publish", SHOP, {}),
    "abandon_gray": Need("publish", SHOP, {}),
}


def test_every_route_is_in_the_matrix() -> None:
    assert sorted({route.name for route in ROUTES} - NEEDS.keys()) == []
    assert sorted(NEEDS.keys() - {route.name for route in ROUTES}) == []


def expected_allowed(caller: Caller, need: str) -> bool | None:
    """True: must not be refused; False: 403; None: 401 (a dead credential)."""
    if need == "public":
        return True
    if caller.has is None:
        return None
    if need == "caller":
        return True
    return need in caller.has


async def _callers(api: Api) -> dict[str, str]:
    """A live credential for each caller (and a dead one for the last two)."""
    await api.app_with_env()
    await api.set_items("shop", "prod", {"k": "v1"})
    assert (await api.publish("shop", "prod")).status == 201
    await api.set_items("shop", "prod", {"k": "v2"})
    tokens: dict[str, str] = {}
    roles = {"viewer": "viewer", "editor": "editor", "publisher": "publisher", "owner": "owner"}
    for name, role in {**roles, "disabled-user": "publisher"}.items():
        answer = await api.call(
            "POST", "/api/v1/users", {"name": name, "password": PASSWORD, "roles": {"shop": role}}
        )
        assert answer.status == 201, answer.text
        login = await api.call(
            "POST", "/api/v1/login", {"username": name, "password": PASSWORD}, token=None
        )
        tokens[name] = login.body["token"]
    tokens["admin"] = api.token
    _, tokens["read token"] = await api.token_for("read:shop")
    _, tokens["write token"] = await api.token_for("write:shop")
    assert (
        await api.call("PATCH", "/api/v1/users/disabled-user", {"disabled": True})
    ).status == 200
    tokens["disabled user"] = tokens.pop("disabled-user")
    made = await api.call(
        "POST", "/api/v1/tokens", {"name": "doomed", "scopes": ["admin"], "expires_in": 60}
    )
    async with api.app[STORE].transaction() as q:
        await q.conn.execute(
            "UPDATE tokens SET expires_at = ? WHERE id = ?",
            ("2000-01-01T00:00:00.000000Z", made.body["id"]),
        )
    tokens["expired token"] = made.body["token"]
    return tokens


async def _status(api: Api, route_method: str, path: str, need: Need, token: str) -> int:
    if route_method == "GET" and need.need == "read_config" and path == "/api/v1/watch":
        return await _watch_status(api, token)
    url = path + (f"?{need.query}" if need.query else "")
    answer = await api.call(route_method, url, need.body, token=token)
    return answer.status


async def _watch_status(api: Api, token: str) -> int:
    """The WebSocket's answer: 401 at the handshake, or 403 as an error message, or 200."""
    try:
        ws = await api.client.ws_connect(f"/api/v1/watch?token={token}&app=shop&env=prod")
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    try:
        message = await ws.receive_json(timeout=5)
    finally:
        await ws.close()
    if message.get("type") == "error":
        return 403 if message["code"] == "forbidden" else 400
    return 200


async def test_every_route_answers_every_caller_as_the_role_table_says(api: Api) -> None:
    tokens = await _callers(api)
    wrong = []
    # Signing out ends the caller's session: last, so every other route sees it alive.
    for route in sorted(ROUTES, key=lambda r: r.name == "logout"):
        need = NEEDS[route.name]
        path = route.path.format(**need.path) if need.path else route.path
        for caller in CALLERS:
            allowed = expected_allowed(caller, need.need)
            status = await _status(api, route.method, path, need, tokens[caller.name])
            if allowed is None:
                ok = status == 401
            elif allowed:
                ok = status not in (401, 403) and status < 500
            else:
                ok = status == 403
            if not ok:
                wrong.append(f"{route.method} {path} as {caller.name}: {status}")
    assert wrong == []
