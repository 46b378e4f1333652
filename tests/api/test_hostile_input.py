"""What an unauthenticated or hostile caller sends: refused plainly, never a 500, never a forged
log line, and no version banner."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from tests.api.helpers import Api, make_config

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


async def test_only_ascii_digits_are_numbers_in_paths_and_queries(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    assert (await api.publish("shop", "prod")).status == 201
    token_id, _ = await api.token_for("read:shop")
    env = "/api/v1/apps/shop/envs/prod"
    before = await api.snapshot()
    for path in (
        f"{env}/releases/%C2%B2",  # superscript two
        f"{env}/releases/%EF%BC%91",  # full-width one
        f"{env}/releases?limit=%EF%BC%95",
        f"{env}/releases?limit=5_0",
        f"{env}/releases?limit=+5",
        f"{env}/releases?limit=%205",
    ):
        answer = await api.call("GET", path)
        assert answer.status == 400, (path, answer.text)
        assert answer.body["error"]["code"] == "invalid_request"
    full_width = "".join(chr(0xFF10 + int(d)) for d in str(token_id))
    revoke = await api.call("DELETE", f"/api/v1/tokens/{full_width}")
    assert revoke.status == 400, revoke.text
    assert await api.snapshot() == before


async def test_control_characters_in_a_path_cannot_forge_a_log_line(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="server.http"):
        answer = await api.call("GET", "/api/v1/apps/x%0Arid=forged%20GET%20/%20200%0D%1B[31m")
    assert answer.status in (400, 404)
    lines = [r.getMessage() for r in caplog.records if r.name == "server.http"]
    assert lines, "the request was logged"
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line for line in lines)
    assert any("\\nrid=forged" in line for line in lines)


async def test_no_answer_names_the_server_software(api: Api) -> None:
    for path, token in (
        ("/api/v1/apps", ""),
        ("/api/v1/apps", None),
        ("/healthz", None),
        ("/login", None),
        ("/static/app.css", None),
        ("/nowhere", None),
    ):
        answer = await api.call("GET", path, token=token)
        assert answer.headers.get("Server") == "configcenter", (path, answer.headers)
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    writer.write(
        b"GET /api/v1/watch HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + f"Authorization: Bearer {api.token}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 101")
    assert b"\r\nServer: configcenter\r\n" in head


async def test_metrics_can_require_their_own_token(
    aiohttp_client: AiohttpClient, store_url: str, tmp_path: Path
) -> None:
    config = make_config(store_url, tmp_path)
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, metrics_token="scrape-me")
    )
    client = await aiohttp_client(create_app(config))
    assert (await client.get("/metrics")).status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert right.status == 200
    assert "configcenter_http_requests_total" in await right.text()
