"""Through the real nginx of docs/proxy.md: sign-in, cookies, origins, WebSocket, addresses."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from http.cookies import SimpleCookie

import aiohttp
import pytest

from devservices import LOOPBACK
from server.records import AuditAction
from tests.proxy.helpers import (
    CLIENT_BEHIND_PROXY,
    DIRECT_CLIENT,
    FAILURES_PER_ADDRESS,
    OTHER_CLIENT_BEHIND_PROXY,
    Proxied,
    Reply,
)

SPOOFED = "198.51.100.9"


def _session_header(answer: Reply) -> str:
    """The Cookie header a browser sends after this sign-in answer."""
    jar = SimpleCookie()
    jar.load(answer.set_cookies()["__Host-cc_session"])
    return f"__Host-cc_session={jar['__Host-cc_session'].value}"


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not seen within {timeout} s: {what}"
        time.sleep(0.05)


def _wrong_password(proxied: Proxied, user: str, *, via_proxy: bool, source: str) -> int:
    body = {"username": user, "password": "not-the-password"}
    headers = {"X-Forwarded-For": SPOOFED, "X-Forwarded-Proto": "https"}
    send = proxied.through_proxy if via_proxy else proxied.direct
    return send("POST", "/api/v1/login", body, headers=headers, source=source).status


def test_sign_in_through_the_proxy_sets_a_host_prefixed_secure_session_cookie(
    proxied: Proxied,
) -> None:
    form, answer = proxied.sign_in_with_the_form()
    assert answer.status == 303, answer.text
    assert answer.headers["Location"] == "/"
    login_cookie = form.set_cookies()["__Secure-cc_login"]
    assert "; Secure" in login_cookie
    assert "Path=/login" in login_cookie
    session = answer.set_cookies()["__Host-cc_session"]
    attributes = {part.strip().split("=")[0].lower() for part in session.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite", "max-age"} <= attributes
    assert "domain" not in attributes
    assert "Path=/;" in session or session.endswith("Path=/")
    assert "SameSite=Strict" in session
    assert "cc_session" not in answer.set_cookies()

    page = proxied.through_proxy("GET", "/", headers={"Cookie": _session_header(answer)})
    assert page.status == 200, page.text
    assert 'name="csrf-token"' in page.text


def test_cookie_writes_through_the_proxy_need_the_public_origin(proxied: Proxied) -> None:
    _, answer = proxied.sign_in_with_the_form()
    cookie = _session_header(answer)
    csrf = proxied.csrf_token(cookie)
    ours = proxied.proxy.origin
    plain_http_same_host = ours.replace("https://", "http://")
    for foreign in ("https://evil.example", plain_http_same_host, f"https://{LOOPBACK}:1"):
        refused = proxied.through_proxy(
            "POST",
            "/api/v1/apps",
            {"name": "refused", "envs": ["prod"]},
            headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Origin": foreign},
        )
        assert refused.status == 403, (foreign, refused.text)
        assert refused.body["error"]["code"] == "forbidden"
    created = proxied.through_proxy(
        "POST",
        "/api/v1/apps",
        {"name": "shop", "envs": ["prod"]},
        headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Origin": ours},
    )
    assert created.status == 201, created.text
    names = [app["name"] for app in proxied.admin_call("GET", "/api/v1/apps")["apps"]]
    assert names == ["shop"]

    # The name that applies is the only one read: over https the plain name is no session.
    plain = cookie.replace("__Host-cc_session", "cc_session")
    assert proxied.through_proxy("GET", "/api/v1/me", headers={"Cookie": plain}).status == 401


def test_a_sign_in_form_posted_from_another_origin_is_refused(proxied: Proxied) -> None:
    _, answer = proxied.sign_in_with_the_form(origin="https://evil.example")
    assert answer.status == 403, answer.text
    assert "__Host-cc_session" not in answer.set_cookies()


async def test_the_websocket_watch_works_through_the_proxy(proxied: Proxied) -> None:
    proxied.admin_call("POST", "/api/v1/apps", {"name": "shop", "envs": ["prod"]})
    proxied.admin_call("PUT", "/api/v1/apps/shop/envs/prod/items/pool.size", {"value": "10"})
    _, answer = proxied.sign_in_with_the_form()
    cookie = _session_header(answer)
    token = proxied.through_proxy(
        "POST", "/api/v1/login", {"username": "admin", "password": proxied.server.admin_password}
    ).body["token"]
    wss = f"wss://{LOOPBACK}:{proxied.proxy.port}/api/v1/watch?app=shop&env=prod"
    connector = aiohttp.TCPConnector(ssl=proxied.proxy.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        by_token = await session.ws_connect(wss, headers={"Authorization": f"Bearer {token}"})
        # The admin page's own socket: its session cookie, from the public origin.
        by_cookie = await session.ws_connect(
            wss, headers={"Cookie": cookie, "Origin": proxied.proxy.origin}
        )
        try:
            await asyncio.to_thread(
                proxied.admin_call, "POST", "/api/v1/apps/shop/envs/prod/releases", {}
            )
            for ws in (by_token, by_cookie):
                message = json.loads(await ws.receive_str(timeout=10))
                assert (message["type"], message["version"]) == ("release", 1)
                assert message["items"] == {"pool.size": "10"}
        finally:
            await by_token.close()
            await by_cookie.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(
                wss, headers={"Cookie": cookie, "Origin": "https://evil.example"}
            )
        assert refused.value.status == 403


def test_the_client_behind_the_proxy_is_its_forwarded_address(proxied: Proxied) -> None:
    answer = proxied.through_proxy(
        "POST",
        "/api/v1/login",
        {"username": "admin", "password": proxied.server.admin_password},
        headers={"X-Forwarded-For": SPOOFED},
    )
    assert answer.status == 200, answer.text
    assert ("user:admin", AuditAction.LOGIN_OK, f"signed in from {CLIENT_BEHIND_PROXY}") in (
        proxied.audit_summaries()
    )
    line = re.compile(rf"POST /api/v1/login 200 \S+ms from {re.escape(CLIENT_BEHIND_PROXY)}$")
    _wait_for(
        "the request log line with the forwarded address",
        lambda: any(line.search(text) for text in proxied.server.log_text().splitlines()),
    )
    assert SPOOFED not in proxied.server.log_text()


def test_sign_in_throttling_counts_each_client_behind_the_proxy(proxied: Proxied) -> None:
    for attempt in range(FAILURES_PER_ADDRESS):
        status = _wrong_password(
            proxied, f"user{attempt}", via_proxy=True, source=CLIENT_BEHIND_PROXY
        )
        assert status == 401
    assert _wrong_password(proxied, "fresh", via_proxy=True, source=CLIENT_BEHIND_PROXY) == 429
    # Another client behind the same proxy has its own count.
    assert (
        _wrong_password(proxied, "other", via_proxy=True, source=OTHER_CLIENT_BEHIND_PROXY) == 401
    )
    actors = {
        actor
        for actor, action, _ in proxied.audit_summaries()
        if action == AuditAction.LOGIN_FAILED
    }
    assert actors == {f"anonymous@{CLIENT_BEHIND_PROXY}", f"anonymous@{OTHER_CLIENT_BEHIND_PROXY}"}


def test_a_direct_client_is_not_believed_about_forwarded_headers(proxied: Proxied) -> None:
    # Not a trusted proxy: its X-Forwarded-For and -Proto are ignored, its address counts.
    for attempt in range(FAILURES_PER_ADDRESS):
        assert _wrong_password(proxied, f"u{attempt}", via_proxy=False, source=DIRECT_CLIENT) == 401
    assert _wrong_password(proxied, "fresh", via_proxy=False, source=DIRECT_CLIENT) == 429
    actors = {
        actor
        for actor, action, _ in proxied.audit_summaries()
        if action == AuditAction.LOGIN_FAILED
    }
    assert actors == {f"anonymous@{DIRECT_CLIENT}"}

    form = proxied.direct(
        "GET",
        "/login",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
    )
    assert list(form.set_cookies()) == ["cc_login"]
    assert "Secure" not in form.set_cookies()["cc_login"]
    assert f"from {DIRECT_CLIENT}" in proxied.server.log_text()
