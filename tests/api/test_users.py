"""Users, roles, passwords, sessions and token lifetimes through the HTTP API, on both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from server.domain import auth as auth_module
from server.keys import SERVICES
from tests.api.helpers import ADMIN_PASSWORD, Api

USERS = "/api/v1/users"
ITEMS = "/api/v1/apps/shop/envs/prod/items"
PASSWORD = "correct-horse-battery"


async def add_user(api: Api, name: str, roles: dict[str, str], admin: bool = False) -> None:
    body = {"name": name, "password": PASSWORD, "roles": roles, "admin": admin}
    answer = await api.call("POST", USERS, body)
    assert answer.status == 201, answer.text


async def sign_in(api: Api, name: str, password: str = PASSWORD) -> str:
    answer = await api.call(
        "POST", "/api/v1/login", {"username": name, "password": password}, token=None
    )
    assert answer.status == 200, answer.text
    token: str = answer.body["token"]
    return token


async def test_create_list_and_read_users(api: Api) -> None:
    created = await api.call(
        "POST", USERS, {"name": "alice", "password": PASSWORD, "roles": {"shop": "editor"}}
    )
    assert created.status == 201
    assert set(created.body) == {
        "name",
        "admin",
        "roles",
        "disabled",
        "created_at",
        "last_login_at",
    }
    assert created.body["roles"] == {"shop": "editor"}
    assert (created.body["admin"], created.body["disabled"]) == (False, False)
    assert created.body["last_login_at"] is None
    assert PASSWORD not in created.text

    listed = await api.call("GET", USERS)
    assert [u["name"] for u in listed.body["users"]] == ["admin", "alice"]
    assert "password" not in listed.text
    assert "hash" not in listed.text

    alice = await sign_in(api, "alice")
    own = await api.call("GET", f"{USERS}/alice", token=alice)
    assert own.status == 200
    assert own.body["last_login_at"] is not None
    assert (await api.call("GET", f"{USERS}/admin", token=alice)).status == 403
    assert (await api.call("GET", USERS, token=alice)).status == 403
    me = await api.call("GET", "/api/v1/me", token=alice)
    assert me.body == {
        "name": "alice",
        "kind": "session",
        "admin": False,
        "roles": {"shop": "editor"},
        "scopes": [],
    }
    assert (await api.call("GET", f"{USERS}/nobody")).status == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "Alice", "password": PASSWORD}, 400, "invalid_name"),
        ({"name": "bob", "password": "short"}, 400, "invalid_password"),
        ({"name": "bob", "password": PASSWORD, "roles": {"shop": "god"}}, 400, "invalid_role"),
        ({"name": "bob", "password": PASSWORD, "roles": {"Shop!": "viewer"}}, 400, "invalid_role"),
        ({"name": "bob", "password": PASSWORD, "roles": ["shop"]}, 400, "invalid_request"),
        ({"name": "bob", "password": PASSWORD, "admin": "yes"}, 400, "invalid_request"),
        ({"name": "bob", "password": PASSWORD, "scopes": ["admin"]}, 400, "invalid_request"),
        ({"name": "admin", "password": PASSWORD}, 409, "exists"),
    ],
)
async def test_bad_user_bodies_change_nothing(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    before = await api.snapshot()
    answer = await api.call("POST", USERS, body)
    assert (answer.status, answer.body["error"]["code"]) == (status, code)
    assert await api.snapshot() == before


async def test_each_role_may_do_what_the_table_says(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    for name, role in [("vic", "viewer"), ("eddie", "editor"), ("pat", "publisher")]:
        await add_user(api, name, {"shop": role})
    await add_user(api, "olga", {"*": "owner"})
    vic, eddie, pat, olga = [await sign_in(api, n) for n in ("vic", "eddie", "pat", "olga")]

    assert (await api.call("GET", ITEMS, token=vic)).status == 200
    assert (await api.call("PUT", f"{ITEMS}/b", {"value": "2"}, token=vic)).status == 403
    assert (await api.call("PUT", f"{ITEMS}/b", {"value": "2"}, token=eddie)).status == 201
    publish = "/api/v1/apps/shop/envs/prod/releases"
    assert (await api.call("POST", publish, {"comment": "x"}, token=eddie)).status == 403
    assert (await api.call("POST", publish, {"comment": "x"}, token=pat)).status == 201
    env = "/api/v1/apps/shop/envs"
    assert (await api.call("POST", env, {"name": "qa"}, token=pat)).status == 403
    assert (await api.call("POST", env, {"name": "qa"}, token=olga)).status == 201
    assert (await api.call("POST", "/api/v1/apps", {"name": "x"}, token=olga)).status == 403
    apps = await api.call("GET", "/api/v1/apps", token=vic)
    assert [a["name"] for a in apps.body["apps"]] == ["shop"]


async def test_own_password_change_needs_the_current_one_and_ends_other_sessions(
    api: Api,
) -> None:
    await add_user(api, "alice", {})
    here, elsewhere = await sign_in(api, "alice"), await sign_in(api, "alice")
    path = f"{USERS}/alice/password"
    wrong = await api.call(
        "PUT", path, {"current": "not-it-at-all", "password": "x" * 12}, token=here
    )
    assert (wrong.status, wrong.body["error"]["code"]) == (403, "wrong_password")
    missing = await api.call("PUT", path, {"password": "x" * 12}, token=here)
    assert missing.status == 403
    ok = await api.call(
        "PUT", path, {"current": PASSWORD, "password": "new-password-1"}, token=here
    )
    assert ok.status == 204
    assert (await api.call("GET", "/api/v1/me", token=here)).status == 200
    assert (await api.call("GET", "/api/v1/me", token=elsewhere)).status == 401
    assert (
        await api.call("PUT", f"{USERS}/admin/password", {"password": "y" * 12}, token=here)
    ).status == 403
    await sign_in(api, "alice", "new-password-1")


async def test_admin_reset_ends_every_session_of_the_user(api: Api) -> None:
    await add_user(api, "alice", {})
    session = await sign_in(api, "alice")
    reset = await api.call("PUT", f"{USERS}/alice/password", {"password": "reset-by-admin"})
    assert reset.status == 204
    assert (await api.call("GET", "/api/v1/me", token=session)).status == 401
    await sign_in(api, "alice", "reset-by-admin")
    audit = await api.call("GET", "/api/v1/audit?limit=5")
    entry = next(e for e in audit.body["entries"] if e["action"] == "user.password")
    assert entry["actor"] == "user:admin"
    assert "reset-by-admin" not in audit.text


async def test_disable_and_delete_end_sessions_and_never_remove_the_last_admin(api: Api) -> None:
    await add_user(api, "alice", {"shop": "viewer"})
    session = await sign_in(api, "alice")
    disabled = await api.call("PATCH", f"{USERS}/alice", {"disabled": True})
    assert disabled.status == 200
    assert disabled.body["disabled"] is True
    assert (await api.call("GET", "/api/v1/me", token=session)).status == 401
    refused = await api.call(
        "POST", "/api/v1/login", {"username": "alice", "password": PASSWORD}, token=None
    )
    assert (refused.status, refused.body["error"]["code"]) == (401, "invalid_credentials")
    await api.call("PATCH", f"{USERS}/alice", {"disabled": False})
    await sign_in(api, "alice")

    before = await api.snapshot()
    for method, body in [
        ("PATCH", {"disabled": True}),
        ("PATCH", {"admin": False}),
        ("DELETE", None),
    ]:
        answer = await api.call(method, f"{USERS}/admin", body)
        assert (answer.status, answer.body["error"]["code"]) == (409, "last_admin")
    assert await api.snapshot() == before

    await add_user(api, "root2", {}, admin=True)
    assert (await api.call("DELETE", f"{USERS}/alice")).status == 204
    assert (await api.call("GET", f"{USERS}/alice")).status == 404
    assert (await api.call("DELETE", f"{USERS}/alice")).status == 404
    assert (await api.call("PATCH", f"{USERS}/admin", {"admin": False})).status == 200


async def test_a_role_change_applies_to_open_sessions_at_once(api: Api) -> None:
    await api.app_with_env()
    await add_user(api, "alice", {"shop": "viewer"})
    session = await sign_in(api, "alice")
    assert (await api.call("PUT", f"{ITEMS}/k", {"value": "v"}, token=session)).status == 403
    await api.call("PATCH", f"{USERS}/alice", {"roles": {"shop": "editor"}})
    assert (await api.call("PUT", f"{ITEMS}/k", {"value": "v"}, token=session)).status == 201
    await api.call("PATCH", f"{USERS}/alice", {"roles": {}})
    assert (await api.call("GET", ITEMS, token=session)).status == 403


async def test_a_user_change_closes_exactly_that_users_sockets(api: Api) -> None:
    await api.app_with_env()
    await add_user(api, "alice", {"shop": "viewer"})
    await add_user(api, "bob", {"shop": "viewer"})
    alice, bob = await sign_in(api, "alice"), await sign_in(api, "bob")
    alice_ws = await api.client.ws_connect(f"/api/v1/watch?token={alice}&app=shop&env=prod")
    bob_ws = await api.client.ws_connect(f"/api/v1/watch?token={bob}&app=shop&env=prod")
    await api.call("PATCH", f"{USERS}/alice", {"roles": {"shop": "editor"}})
    closing = await alice_ws.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert alice_ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    await asyncio.sleep(0.2)
    assert not bob_ws.closed
    await bob_ws.close()


async def test_sessions_are_listed_and_ended_by_their_user_or_an_admin(api: Api) -> None:
    await add_user(api, "alice", {})
    await add_user(api, "bob", {})
    first, second = await sign_in(api, "alice"), await sign_in(api, "alice")
    bob = await sign_in(api, "bob")
    own = await api.call("GET", "/api/v1/sessions", token=first)
    assert own.status == 200
    assert len(own.body["sessions"]) == 2
    entry = own.body["sessions"][0]
    assert set(entry) == {"id", "user", "created_at", "expires_at", "last_used_at", "address"}
    assert {s["user"] for s in own.body["sessions"]} == {"alice"}
    assert first not in own.text
    assert (await api.call("GET", "/api/v1/sessions?user=bob", token=first)).status == 403
    by_admin = await api.call("GET", "/api/v1/sessions?user=alice")
    assert len(by_admin.body["sessions"]) == 2

    bobs = await api.call("GET", "/api/v1/sessions", token=bob)
    bob_session = bobs.body["sessions"][0]["id"]
    # Another user's session is not found, not forbidden: its id tells nothing.
    assert (await api.call("DELETE", f"/api/v1/sessions/{bob_session}", token=first)).status == 404
    newest = own.body["sessions"][0]["id"]
    assert (await api.call("DELETE", f"/api/v1/sessions/{newest}", token=first)).status == 204
    assert (await api.call("GET", "/api/v1/me", token=second)).status == 401
    assert (await api.call("GET", "/api/v1/me", token=first)).status == 200
    assert (await api.call("DELETE", f"/api/v1/sessions/{bob_session}")).status == 204
    assert (await api.call("GET", "/api/v1/me", token=bob)).status == 401
    assert (await api.call("DELETE", "/api/v1/sessions/%EF%BC%99")).status == 400
    audit = await api.call("GET", "/api/v1/audit?limit=10")
    assert [e["actor"] for e in audit.body["entries"] if e["action"] == "session.revoke"] == [
        "user:admin",
        "user:alice",
    ]


async def test_token_expiry_unique_live_names_and_last_use(api: Api) -> None:
    created = await api.call(
        "POST", "/api/v1/tokens", {"name": "ci", "scopes": ["admin"], "expires_in": 3600}
    )
    assert created.status == 201
    assert created.body["expires_at"] is not None
    assert created.body["last_used_at"] is None
    dup = await api.call("POST", "/api/v1/tokens", {"name": "ci", "scopes": ["admin"]})
    assert (dup.status, dup.body["error"]["code"]) == (409, "exists")
    for bad in (0, 59, -1, "3600", 10**12):
        answer = await api.call(
            "POST", "/api/v1/tokens", {"name": "x", "scopes": ["admin"], "expires_in": bad}
        )
        assert answer.status == 400, bad

    secret = created.body["token"]
    for _ in range(5):
        assert (await api.call("GET", "/api/v1/me", token=secret)).status == 200
    auth = api.app[SERVICES].auth
    assert await auth.write_last_used() >= 1  # one write for all five uses
    assert await auth.write_last_used() == 0
    listed = await api.call("GET", "/api/v1/tokens")
    entry = next(t for t in listed.body["tokens"] if t["id"] == created.body["id"])
    assert entry["last_used_at"] is not None
    assert entry["revoked"] is False

    assert (await api.call("DELETE", f"/api/v1/tokens/{entry['id']}")).status == 204
    again = await api.call("POST", "/api/v1/tokens", {"name": "ci", "scopes": ["admin"]})
    assert again.status == 201
    audit = await api.call("GET", "/api/v1/audit?limit=5")
    revoke = next(e for e in audit.body["entries"] if e["action"] == "token.revoke")
    assert revoke["target"] == f"token:ci#{entry['id']}"


async def test_an_expired_token_is_refused_and_frees_its_name(api: Api) -> None:
    created = await api.call(
        "POST", "/api/v1/tokens", {"name": "brief", "scopes": ["admin"], "expires_in": 60}
    )
    secret = created.body["token"]
    async with api.app[SERVICES].ctx.store.transaction() as q:
        await q.conn.execute(
            "UPDATE tokens SET expires_at = ? WHERE id = ?",
            ("2000-01-01T00:00:00.000000Z", created.body["id"]),
        )
    api.app[SERVICES].auth.forget_token(created.body["id"])
    assert (await api.call("GET", "/api/v1/me", token=secret)).status == 401
    again = await api.call("POST", "/api/v1/tokens", {"name": "brief", "scopes": ["admin"]})
    assert again.status == 201


async def test_bootstrap_admin_signs_in_with_the_configured_password(api: Api) -> None:
    assert await sign_in(api, "admin", ADMIN_PASSWORD)


async def test_audit_filters_by_actor_and_action_and_shows_viewers_their_apps(api: Api) -> None:
    await api.app_with_env()
    await api.app_with_env("billing", "prod")
    await add_user(api, "vic", {"shop": "viewer"})
    await add_user(api, "eddie", {"shop": "editor"})
    eddie = await sign_in(api, "eddie")
    assert (await api.call("PUT", f"{ITEMS}/a", {"value": "1"}, token=eddie)).status == 201
    vic = await sign_in(api, "vic")

    by_actor = await api.call("GET", "/api/v1/audit?actor=user:eddie")
    assert {e["action"] for e in by_actor.body["entries"]} == {"login.ok", "item.create"}
    family = await api.call("GET", "/api/v1/audit?action=user.*")
    assert [e["action"] for e in family.body["entries"]] == [
        "user.create",
        "user.create",
        "user.create",
    ]
    exact = await api.call("GET", "/api/v1/audit?action=app.create&app=billing")
    assert [e["target"] for e in exact.body["entries"]] == ["billing"]

    shop = await api.call("GET", "/api/v1/audit?app=shop", token=vic)
    assert shop.status == 200
    assert {e["app"] for e in shop.body["entries"]} == {"shop"}
    assert (await api.call("GET", "/api/v1/audit?app=billing", token=vic)).status == 403
    assert (await api.call("GET", "/api/v1/audit", token=vic)).status == 403
    for bad in ("action=user", "action=%25", "action=user.%25", "app=Bad!"):
        answer = await api.call("GET", f"/api/v1/audit?{bad}")
        assert answer.status == 400, bad


async def test_a_user_disabled_behind_the_cache_is_refused_and_its_sockets_closed(
    api: Api,
) -> None:
    """No event at all (as if the replica that disabled the user died before announcing it):
    the cache's freshness window and the hub's periodic check still apply it."""
    await api.app_with_env()
    await add_user(api, "alice", {"shop": "viewer"})
    await add_user(api, "bob", {"shop": "viewer"})
    alice, bob = await sign_in(api, "alice"), await sign_in(api, "bob")
    alice_ws = await api.client.ws_connect(f"/api/v1/watch?token={alice}&app=shop&env=prod")
    bob_ws = await api.client.ws_connect(f"/api/v1/watch?token={bob}&app=shop&env=prod")
    assert (await api.call("GET", "/api/v1/me", token=alice)).status == 200
    async with api.app[SERVICES].ctx.store.transaction() as q:
        await q.conn.execute(
            "UPDATE users SET disabled = 1, changed_at = ? WHERE name = 'alice'",
            ("2100-01-01T00:00:00.000000Z",),
        )
    closing = await alice_ws.receive(timeout=auth_module.WS_TOKEN_CHECK_SECONDS + 4)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert alice_ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    await asyncio.sleep(auth_module.AUTH_FRESH_SECONDS + 0.2)
    assert (await api.call("GET", "/api/v1/me", token=alice)).status == 401
    assert not bob_ws.closed
    assert (await api.call("GET", "/api/v1/me", token=bob)).status == 200
    await bob_ws.close()
