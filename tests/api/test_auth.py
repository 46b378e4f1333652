"""Login, tokens, scopes and revocation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

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
async def test_bad_token_requests_change_nothing(api: Api, body: dict[str, Any]) -> None:
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
