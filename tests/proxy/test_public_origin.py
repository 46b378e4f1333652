"""The public origin: server.public_url, else a trusted proxy's forwarded one, else the request."""

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


async def _login_cookie(api: Api, headers: dict[str, str]) -> str:
    form = await api.call("GET", "/login", token=None, headers=headers)
    assert form.status == 200, form.text
    return form.headers["Set-Cookie"].split("=", 1)[0]


async def test_a_trusted_proxy_is_believed_about_one_scheme_and_one_host(start: Start) -> None:
    # The test client connects from 127.0.0.1, trusted here as a proxy.
    api = await start(trusted_proxies=("127.0.0.1",))
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "config.example.com"}
    assert await _login_cookie(api, https) == "__Secure-cc_login"
    assert await _login_cookie(api, {"X-Forwarded-Proto": "HTTPS"}) == "__Secure-cc_login"
    for unbelieved in ("https, http", "ftp", ""):
        assert await _login_cookie(api, {"X-Forwarded-Proto": unbelieved}) == "cc_login"
    assert await _login_cookie(api, {}) == "cc_login"

    created = await api.call(
        "POST",
        "/api/v1/apps",
        {"name": "shop", "envs": ["prod"]},
        token=None,
        headers={
            **https,
            "Cookie": f"__Host-cc_session={api.token}",
            "X-CSRF-Token": csrf_token_for(api.token),
            "Origin": PUBLIC,
        },
    )
    assert created.status == 201, created.text
    own = f"http://{api.client.host}:{api.client.port}"
    # A host header that is not one host name is not believed, even with the Origin it implies.
    for host, implied in (
        ("a.example, b.example", "http://a.example"),
        ("evil.example/path", "http://evil.example"),
        ("user@evil.example", "http://evil.example"),
    ):
        answer = await api.call(
            "POST",
            "/api/v1/apps",
            {"name": "other", "envs": ["prod"]},
            token=None,
            headers={
                "X-Forwarded-Host": host,
                "Cookie": f"cc_session={api.token}",
                "X-CSRF-Token": csrf_token_for(api.token),
                "Origin": implied,
            },
        )
        assert answer.status == 403, (host, answer.text)
    same = await _cookie_write(api, "cc_session", own, "own")
    assert same.status == 201, same.text
