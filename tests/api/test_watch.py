"""The WebSocket push channel over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.api.helpers import Api, AppFactory

ENV = "/api/v1/apps/shop/envs/prod"


async def receive(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> dict[str, Any]:
    message = await ws.receive(timeout=within)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data: dict[str, Any] = message.json()
    return data


async def nothing_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    try:
        await ws.receive(timeout=seconds)
    except TimeoutError:
        return True
    return False


async def connect(api: Api, query: str = "", token: str | None = None) -> Any:
    return await api.client.ws_connect(
        f"/api/v1/watch{query}", headers={"Authorization": f"Bearer {token or api.token}"}
    )


async def publish(api: Api, items: dict[str, str]) -> int:
    await api.set_items("shop", "prod", items)
    answer = await api.publish("shop", "prod")
    assert answer.status == 201, answer.text
    return int(answer.body["version"])


async def test_subscriber_receives_a_publish_without_polling(api: Api) -> None:
    await api.app_with_env()
    ws = await connect(api)
    await ws.send_json({"op": "subscribe", "app": "shop", "env": "prod"})
    assert await nothing_within(ws, 0.3)  # never published: nothing yet
    version = await publish(api, {"a": "1"})
    message = await receive(ws)
    assert message["type"] == "release"
    assert (message["app"], message["env"], message["version"]) == ("shop", "prod", version)
    assert message["items"] == {"a": "1"}
    assert message["checksum"].startswith("sha256:")
    await ws.close()


async def test_query_subscription_and_after(api: Api) -> None:
    await api.app_with_env()
    await publish(api, {"a": "1"})
    await publish(api, {"a": "2"})
    newer = await connect(api, "?app=shop&env=prod&after=1")
    message = await receive(newer)
    assert message["version"] == 2
    assert message["items"] == {"a": "2"}
    current = await connect(api, "?app=shop&env=prod&after=2")
    assert await nothing_within(current, 0.5)
    version = await publish(api, {"a": "3"})
    assert (await receive(current))["version"] == version
    assert (await receive(newer))["version"] == version
    absent = await connect(api, "?app=shop&env=prod")
    assert (await receive(absent))["version"] == 3
    for ws in (newer, current, absent):
        await ws.close()


async def test_versions_arrive_in_order(api: Api) -> None:
    await api.app_with_env()
    ws = await connect(api, "?app=shop&env=prod&after=0")
    for n in range(1, 11):
        await publish(api, {"n": str(n)})
    seen: list[int] = []
    while len(seen) < 10 and (not seen or seen[-1] < 10):
        seen.append((await receive(ws))["version"])
    assert seen == sorted(seen)
    assert seen[-1] == 10
    await ws.close()


async def test_bad_ops_get_errors_and_the_socket_stays_open(api: Api) -> None:
    await api.app_with_env()
    await api.app_with_env("secret", "prod")
    _, reader = await api.token_for("read:shop")
    ws = await connect(api, token=reader)
    for payload, code in [
        ("not json", "invalid_json"),
        ('{"op": "dance"}', "invalid_op"),
        ('{"op": "subscribe", "app": "shop"}', "invalid_request"),
        ('{"op": "subscribe", "app": "Bad!", "env": "prod"}', "invalid_name"),
        ('{"op": "subscribe", "app": "shop", "env": "prod", "after": -1}', "invalid_request"),
        ('{"op": "subscribe", "app": "shop", "env": "nope"}', "not_found"),
        ('{"op": "subscribe", "app": "nope", "env": "prod"}', "forbidden"),
        ('{"op": "subscribe", "app": "secret", "env": "prod"}', "forbidden"),
        ('{"op": "subscribe", "app": "shop", "env": "prod", "x": 1}', "invalid_request"),
    ]:
        await ws.send_str(payload)
        message = await receive(ws)
        assert message["type"] == "error", payload
        assert message["code"] == code, (payload, message)
    await ws.send_json({"op": "subscribe", "app": "shop", "env": "prod"})
    version = await publish(api, {"still": "open"})
    assert (await receive(ws))["version"] == version
    await ws.send_json({"op": "unsubscribe", "app": "shop", "env": "prod"})
    await asyncio.sleep(0.1)
    await publish(api, {"still": "unsubscribed"})
    assert await nothing_within(ws, 0.5)
    await ws.close()


async def test_watch_needs_a_valid_token(api: Api) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as denied:
        await api.client.ws_connect("/api/v1/watch")
    assert denied.value.status == 401
    ws = await api.client.ws_connect(f"/api/v1/watch?token={api.token}")
    await ws.close()


async def test_subscription_limit(api_factory: AppFactory, sqlite_url: str) -> None:
    api = await api_factory(sqlite_url, max_subscriptions_per_socket=2)
    await api.call("POST", "/api/v1/apps", {"name": "shop", "envs": ["a", "b", "c"]})
    ws = await connect(api)
    for env in ("a", "b", "c"):
        await ws.send_json({"op": "subscribe", "app": "shop", "env": env})
    message = await receive(ws)
    assert message == {
        "type": "error",
        "code": "too_many_subscriptions",
        "message": message["message"],
    }
    await ws.close()


async def test_revoked_token_closes_its_sockets_only(api: Api) -> None:
    await api.app_with_env()
    token_id, doomed = await api.token_for("read:shop", name="doomed")
    _, kept = await api.token_for("read:shop", name="kept")
    doomed_ws = await connect(api, "?app=shop&env=prod", token=doomed)
    kept_ws = await connect(api, "?app=shop&env=prod", token=kept)
    assert (await api.call("DELETE", f"/api/v1/tokens/{token_id}")).status == 204
    closing = await doomed_ws.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert doomed_ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    version = await publish(api, {"a": "1"})
    assert (await receive(kept_ws))["version"] == version
    await kept_ws.close()


async def test_slow_reader_is_closed_with_1013_while_others_keep_receiving(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url, send_queue_size=4)
    await api.app_with_env()
    slow = await connect(api, "?app=shop&env=prod&after=0")
    fast = await connect(api, "?app=shop&env=prod&after=0")
    fast_versions: list[int] = []

    async def drain_fast() -> None:
        while True:
            message = await fast.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            fast_versions.append(message.json()["version"])

    reader = asyncio.create_task(drain_fast())
    big = "x" * 60_000  # large frames fill the slow reader's socket buffers quickly
    last = 0
    for n in range(120):
        last = await publish(api, {"big": f"{n}{big}"})
        if slow.closed or slow.close_code is not None:
            break
    # The slow reader never read; its messages pile up until the server gives up on it.
    closed_with = None
    for _ in range(400):
        message = await slow.receive(timeout=10)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            closed_with = slow.close_code
            break
    assert closed_with == 1013
    for _ in range(100):
        if fast_versions and fast_versions[-1] == last:
            break
        await asyncio.sleep(0.05)
    assert fast_versions[-1] == last
    assert fast_versions == sorted(fast_versions)
    await fast.close()
    await reader


async def test_a_peer_that_misses_two_pings_is_closed(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url, heartbeat_seconds=0.2)
    await api.app_with_env()
    headers = {"Authorization": f"Bearer {api.token}"}
    # A subscriber that reads (and so answers pings) the way a real one does.
    alive = await api.client.ws_connect("/api/v1/watch?app=shop&env=prod", headers=headers)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def read_alive() -> None:
        async for message in alive:
            received.put_nowait(message.json())

    reader = asyncio.create_task(read_alive())
    # A peer that never answers pings (autoping off).
    silent = await api.client.ws_connect("/api/v1/watch", headers=headers, autoping=False)
    pings = 0
    closed = None
    for _ in range(50):
        message = await silent.receive(timeout=5)
        if message.type == aiohttp.WSMsgType.PING:
            pings += 1
            continue
        closed = message
        break
    assert closed is not None
    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert pings >= 2  # it was given two chances
    version = await publish(api, {"still": "here"})
    assert (await asyncio.wait_for(received.get(), 5))["version"] == version
    assert not alive.closed
    await alive.close()
    await reader
    await silent.close()
