"""server.public_url decides the origin and the cookie, whatever the request or a proxy says."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.domain.auth import csrf_token_for
from tests.api.helpers import ADMIN_PASSWORD, Answer, Api, make_config

PUBLIC = "https://config.example.com"
Start = Callable[..., Awaitable[Api]]
"""start(public_url=..., trusted_proxies=...): the [server] keys to set."""


@pytest.fixture
def start(
    aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store_url: str
) -> Start:
    """Start an app with [server] keys replaced, signed in as admin over the API."""
    monkeypatch.setenv("CONFIGCENTER_ADMIN_PASSWORD", ADMIN_PASSWORD)

    async def started(public_url: str = "", trusted_proxies: tuple[str, ...] = ()) -> Api:
        config = make_config(store_url, tmp_path)
        server = dataclasses.replace(
            config.server, public_url=public_url, trusted_proxies=trusted_proxies
        )
        config = dataclasses.replace(config, server=server)
        client = await aiohttp_client(create_app(config))
        login = await client.post(
            "/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status == 200, await login.text()
        return Api(client, (await login.json())["token"])

    return started


async def _cookie_write(api: Api, cookie_name: str, origin: str, name: str) -> Answer:
    return await api.call(
        "POST",
        "/api/v1/apps",
        {"name": name, "envs": ["prod"]},
        token=None,
        headers={
            "Cookie": f"{cookie_name}={api.token}",
            "X-CSRF-Token": csrf_token_for(api.token),
            "Origin": origin,
        },
    )


async def test_public_url_is_the_only_origin_of_cookie_writes(start: Start) -> None:
    api = await start(public_url=PUBLIC)
    own = f"http://{api.client.host}:{api.client.port}"
    refused = await _cookie_write(api, "__Host-cc_session", own, "refused")
    assert refused.status == 403, refused.text
    assert refused.body["error"]["code"] == "forbidden"
    created = await _cookie_write(api, "__Host-cc_session", PUBLIC, "shop")
    assert created.status == 201, created.text
    # An https public origin reads only the __Host- name.
    plain = await _cookie_write(api, "cc_session", PUBLIC, "plain")
    assert plain.status == 401, plain.text


async def test_public_url_wins_over_a_trusted_proxys_headers(start: Start) -> None:
    api = await start(public_url=PUBLIC, trusted_proxies=("127.0.0.1",))
    forwarded = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example"}
    form = await api.call("GET", "/login", token=None, headers=forwarded)
    assert form.status == 200
    cookie = form.headers["Set-Cookie"]
    assert cookie.startswith("__Secure-cc_login=")
    assert "Secure" in cookie
    refused = await _cookie_write(api, "__Host-cc_session", "http://evil.example", "refused")
    assert refused.status == 403
    created = await _cookie_write(api, "__Host-cc_session", PUBLIC, "shop")
    assert created.status == 201, created.text


async def test_an_http_public_url_keeps_the_plain_cookie(start: Start) -> None:
    api = await start(public_url="http://config.internal:8080")
    form = await api.call("GET", "/login", token=None)
    cookie = form.headers["Set-Cookie"]
    assert cookie.startswith("cc_login=")
    assert "Secure" not in cookie
    created = await _cookie_write(api, "cc_session", "http://config.internal:8080", "shop")
    assert created.status == 201, created.text


async def test_without_either_key_plain_http_works_as_before(start: Start) -> None:
    api = await start()
    own = f"http://{api.client.host}:{api.client.port}"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    form = await api.call("GET", "/login", token=None, headers=forwarded)
    assert form.headers["Set-Cookie"].startswith("cc_login=")
    created = await _cookie_write(api, "cc_session", own, "shop")
    assert created.status == 201, created.text
