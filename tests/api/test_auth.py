"""Login, tokens, scopes, revocation, and the auth policy of every route."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.web import AbstractRoute

from server.api.routes import ROUTES
from server.domain.auth import csrf_token_for
from server.middleware import CSRF_HEADER, POLICIES, SESSION_COOKIE, Access
from tests.api.helpers import ADMIN_PASSWORD, Api


async def test_login(api: Api) -> None:
    ok = await api.call(
        "POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD}, token=None
    )
    assert ok.status == 200
    assert ok.body["token"].startswith("cc_")
    assert ok.body["expires_at"].endswith("Z")
    for body in (
        {"username": "admin", "password": "wrong-password"},
        {"username": "nobody", "password": ADMIN_PASSWORD},
    ):
        bad = await api.call("POST", "/api/v1/login", body, token=None)
        assert bad.status == 401
        assert bad.body["error"]["code"] == "invalid_credentials"
    malformed = await api.call("POST", "/api/v1/login", {"username": "admin"}, token=None)
    assert malformed.status == 400


@pytest.mark.parametrize(
    ("token", "code"),
    [(None, "unauthorized"), ("cc_wrong", "unauthorized"), ("garbage", "unauthorized")],
)
async def test_missing_or_bad_token_is_401(api: Api, token: str | None, code: str) -> None:
    answer = await api.call("GET", "/api/v1/apps", token=token)
    assert answer.status == 401
    assert answer.body["error"]["code"] == code


async def test_malformed_authorization_header(api: Api) -> None:
    answer = await api.call("GET", "/api/v1/apps", token=None, headers={"Authorization": "Basic x"})
    assert answer.status == 401


async def test_tokens_lifecycle_and_secret_never_listed(api: Api) -> None:
    token_id, secret = await api.token_for("write:shop", name="deployer")
    listed = await api.call("GET", "/api/v1/tokens")
    entry = next(t for t in listed.body["tokens"] if t["id"] == token_id)
    assert entry["name"] == "deployer"
    assert entry["scopes"] == ["write:shop"]
    assert secret not in listed.text
    snapshot = await api.snapshot()
    assert all(secret not in str(row) for row in snapshot["tokens"])
    await api.app_with_env()
    assert (await api.call("GET", "/api/v1/apps/shop", token=secret)).status == 200
    assert (await api.call("DELETE", f"/api/v1/tokens/{token_id}")).status == 204
    revoked = await api.call("GET", "/api/v1/apps/shop", token=secret)
    assert revoked.status == 401
    assert (await api.call("DELETE", "/api/v1/tokens/99999")).status == 404


async def test_scopes_are_enforced(api: Api) -> None:
    await api.app_with_env("shop", "prod")
    _, writer = await api.token_for("write:shop")
    _, reader = await api.token_for("read:shop")
    items = "/api/v1/apps/shop/envs/prod/items/k"
    assert (await api.call("PUT", items, {"value": "1"}, token=writer)).status == 201
    before = await api.snapshot()
    denied = await api.call("PUT", items, {"value": "2"}, token=reader)
    assert denied.status == 403
    assert denied.body["error"]["code"] == "forbidden"
    assert (await api.call("POST", "/api/v1/apps", {"name": "blog"}, token=writer)).status == 403
    assert (await api.call("GET", "/api/v1/tokens", token=writer)).status == 403
    assert (await api.call("GET", "/api/v1/audit", token=writer)).status == 403
    assert (await api.call("GET", "/api/v1/cluster", token=reader)).status == 403
    token_body = {"name": "x", "scopes": ["admin"]}
    assert (await api.call("POST", "/api/v1/tokens", token_body, token=writer)).status == 403
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": ["write:Bad App"]},
        {"name": "x", "scopes": "admin"},
        {"name": "bad name", "scopes": ["admin"]},
        {"name": "x"},
    ],
)
async def test_bad_token_requests_change_nothing(api: Api, body: dict[str, object]) -> None:
    before = await api.snapshot()
    answer = await api.call("POST", "/api/v1/tokens", body)
    assert answer.status == 400, answer.text
    assert await api.snapshot() == before


async def test_logout_ends_the_session(api: Api) -> None:
    login = await api.call(
        "POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD}, token=None
    )
    session = login.body["token"]
    assert (await api.call("GET", "/api/v1/me", token=session)).body["name"] == "admin"
    assert (await api.call("POST", "/api/v1/logout", token=session)).status == 204
    assert (await api.call("GET", "/api/v1/me", token=session)).status == 401


async def _raw_status(api: Api, request_head: bytes) -> bytes:
    """The status code of a request sent byte for byte (clients refuse to send such headers)."""
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    writer.write(request_head + b"Host: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status_line.split()[1]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_undecodable_or_non_ascii_credentials_are_401_not_500(api: Api) -> None:
    for raw in (b"Bearer cc_\xff\xfe", "Bearer cc_ünïcode".encode(), b"Bearer \xc3\xa9"):
        head = b"GET /api/v1/apps HTTP/1.1\r\nAuthorization: " + raw + b"\r\n"
        assert await _raw_status(api, head) == b"401", raw


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_non_ascii_csrf_token_is_refused_not_a_500(api: Api) -> None:
    cookie = f"Cookie: cc_session={api.token}\r\n".encode()
    for token in ("tökén".encode(), b"\xff\xfe"):
        head = b"DELETE /api/v1/apps/x HTTP/1.1\r\n" + cookie + b"X-CSRF-Token: " + token + b"\r\n"
        assert await _raw_status(api, head) == b"403", token


# Values for the path placeholders of every route: enough to reach the auth check.
_PLACEHOLDERS = {
    "name": "someone",
    "app": "shop",
    "env": "prod",
    "key": "k",
    "id": "1",
    "version": "1",
    "path": "app.css",
    # the Spring Cloud Config routes (server/compat/spring.py)
    "application": "shop",
    "profiles": "prod",
    "label": "main",
    "ext": "properties",
    # the Apollo routes (server/compat/apollo.py)
    "namespace": "application",
}


def _request_path(route: AbstractRoute) -> str:
    """A concrete path that the route matches."""
    assert route.resource is not None
    info = route.resource.get_info()
    if "prefix" in info:  # the static files
        return f"{info['prefix']}/app.css"
    template = str(info.get("formatter") or info["path"])
    return template.format(**_PLACEHOLDERS)


async def test_no_token_is_401_exactly_on_the_routes_whose_policy_needs_a_caller(
    api: Api,
) -> None:
    policies = api.app[POLICIES]
    undeclared = []
    wrong = []
    for route in api.app.router.routes():
        policy = policies.get(route)
        if policy is None:
            undeclared.append(f"{route.method} {route.resource and route.resource.canonical}")
            continue
        path = _request_path(route)
        async with api.client.request(route.method, path, allow_redirects=False) as response:
            status = response.status
        # A public route answers without a caller: neither 401 nor a failure for lack of one.
        # A compatible API's route answers as its protocol does (401, 403 or 404), never 500.
        if policy.access is Access.PROTOCOL:
            expected = status < 500
        elif policy.needs_caller:
            expected = status == 401
        else:
            expected = status != 401 and status < 500
        if not expected:
            wrong.append(f"{route.method} {path}: {status} with policy {policy}")
    assert undeclared == []
    assert wrong == []
    # Routes that need a caller outnumber the public ones; both kinds are walked.
    kinds = {policy.needs_caller for policy in policies.values()}
    assert kinds == {True, False}


async def test_the_openapi_document_takes_security_from_the_same_policy(api: Api) -> None:
    paths = (await api.call("GET", "/api/openapi.json", token=None)).body["paths"]
    for route in ROUTES:
        operation = paths[route.path][route.method.lower()]
        schemes = {name for option in operation.get("security", []) for name in option}
        expected = {"bearer", "session"} if route.policy.needs_caller else set()
        if route.policy.query_token:
            expected.add("query_token")
        assert schemes == expected, route.name
    assert "query_token" in {
        name for option in paths["/api/v1/watch"]["get"]["security"] for name in option
    }


async def test_unmatched_paths_keep_their_answers(api: Api) -> None:
    # Under /api/v1 a caller comes first: without one, nothing tells which routes exist.
    assert (await api.call("GET", "/api/v1/nothing-here", token=None)).status == 401
    assert (await api.call("GET", "/api/v1/nothing-here")).status == 404
    assert (await api.call("PUT", "/api/v1/me", token=None)).status == 401
    elsewhere = await api.call("GET", "/nothing-here", token=None)
    assert elsewhere.status == 404
    assert elsewhere.body["error"]["code"] == "not_found"


async def test_a_query_token_counts_only_where_the_route_allows_it(api: Api) -> None:
    refused = await api.call("GET", f"/api/v1/apps?token={api.token}", token=None)
    assert refused.status == 401
    ws = await api.client.ws_connect(f"/api/v1/watch?token={api.token}")
    await ws.close()


async def _session_cookie(api: Api) -> dict[str, str]:
    login = await api.call(
        "POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD}, token=None
    )
    return {"Cookie": f"{SESSION_COOKIE}={login.body['token']}"}


def _origins(api: Api) -> tuple[str, list[str]]:
    """Our origin, and others that differ from it in scheme, host or port only."""
    host, port = api.client.host, api.client.port
    assert port is not None
    ours = f"http://{host}:{port}"
    return ours, [f"https://{host}:{port}", f"http://localhost:{port}", f"http://{host}:{port + 1}"]


async def test_a_session_websocket_needs_the_same_scheme_host_and_port(api: Api) -> None:
    cookie = await _session_cookie(api)
    ours, others = _origins(api)
    ws = await api.client.ws_connect("/api/v1/watch", headers={**cookie, "Origin": ours})
    await ws.close()
    for origin in [*others, "null"]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.client.ws_connect("/api/v1/watch", headers={**cookie, "Origin": origin})
        assert refused.value.status == 403, origin
    # A bearer token is not a browser's ambient credential: no origin check.
    with_token = await api.client.ws_connect(
        "/api/v1/watch",
        headers={"Authorization": f"Bearer {api.token}", "Origin": others[0]},
    )
    await with_token.close()


async def test_a_session_write_from_another_origin_is_refused(api: Api) -> None:
    cookie = await _session_cookie(api)
    secret = cookie["Cookie"].split("=", 1)[1]
    headers = {**cookie, CSRF_HEADER: csrf_token_for(secret)}
    ours, others = _origins(api)
    before = await api.snapshot()
    for origin in others:
        refused = await api.call(
            "POST",
            "/api/v1/apps",
            {"name": "evil"},
            token=None,
            headers={**headers, "Origin": origin},
        )
        assert refused.status == 403, origin
        assert refused.body["error"]["code"] == "forbidden"
    assert await api.snapshot() == before
    created = await api.call(
        "POST", "/api/v1/apps", {"name": "good"}, token=None, headers={**headers, "Origin": ours}
    )
    assert created.status == 201, created.text
