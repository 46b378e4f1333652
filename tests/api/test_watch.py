"""The WebSocket push channel over real sockets."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from typing import Any

import aiohttp
import pytest

from server.keys import STORE
from server.watch.http import MAX_CLIENT_MESSAGE
from tests.api.helpers import Api, AppFactory
from tests.client.helpers import wait_until

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
    # One socket's messages are handled in order: once the bad op is answered, the
    # unsubscribe before it is in effect.
    await ws.send_json({"op": "dance"})
    assert (await receive(ws))["code"] == "invalid_op"
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
    api_factory: AppFactory, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="server.watch.connection")
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

    def gave_up() -> bool:
        return any("too slow" in r.getMessage() for r in caplog.records)

    big = "x" * 60_000  # large frames fill the slow reader's socket buffers quickly
    last = 0
    # The slow reader never reads; its messages pile up until the server gives up on it.
    # How many that takes depends on the kernel's socket buffers, so publish until then.
    # (The close itself cannot finish before the slow reader reads: its close frame waits
    # behind the frames it has not read, so the decision, logged, is what is waited for.)
    for n in range(1000):
        last = await publish(api, {"big": f"{n}{big}"})
        if gave_up():
            break
    assert gave_up(), f"the slow reader was not given up on after {last} publishes"
    closed_with = None
    for _ in range(last + 2):
        message = await slow.receive(timeout=20)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            closed_with = slow.close_code
            break
    assert closed_with == 1013
    await wait_until(
        lambda: bool(fast_versions) and fast_versions[-1] == last, "the fast reader to catch up"
    )
    assert fast_versions == list(range(1, last + 1))  # every release, in order
    await fast.close()
    await reader


async def test_a_peer_that_misses_two_pings_is_closed(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    # Long enough that a reader on a loaded machine answers in time (it has two beats).
    api = await api_factory(sqlite_url, heartbeat_seconds=0.5)
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
    async with asyncio.timeout(30):  # closed after about three beats; bounded well past that
        while (closed := await silent.receive()).type == aiohttp.WSMsgType.PING:
            pings += 1
    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert pings >= 2  # it was given two chances
    version = await publish(api, {"still": "here"})
    assert (await asyncio.wait_for(received.get(), 20))["version"] == version
    assert not alive.closed
    await alive.close()
    await reader
    await silent.close()


async def test_every_bad_message_is_answered_and_the_other_subscription_keeps_receiving(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url, max_subscriptions_per_socket=2)
    await api.call("POST", "/api/v1/apps", {"name": "shop", "envs": ["prod", "b", "c"]})
    await api.app_with_env("secret", "prod")
    _, reader = await api.token_for("read:shop")
    ws = await connect(api, "?app=shop&env=prod", token=reader)
    await ws.send_json({"op": "subscribe", "app": "shop", "env": "b"})  # the limit is now full
    for payload, code in [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('"subscribe"', "invalid_json"),
        ("{}", "invalid_op"),
        ('{"op": "dance"}', "invalid_op"),
        ('{"op": 1, "app": "shop", "env": "c"}', "invalid_op"),
        ('{"op": "subscribe", "app": "shop", "env": "c", "after": "5"}', "invalid_request"),
        ('{"op": "subscribe", "app": "shop", "env": "c", "after": true}', "invalid_request"),
        ('{"op": "subscribe", "app": "shop", "env": "c", "after": 1.5}', "invalid_request"),
        ('{"op": "subscribe", "app": 7, "env": "c"}', "invalid_request"),
        ('{"op": "unsubscribe", "app": "shop", "env": "b", "after": 1}', "invalid_request"),
        ('{"op": "subscribe", "app": "shop", "env": "missing"}', "not_found"),
        ('{"op": "subscribe", "app": "secret", "env": "prod"}', "forbidden"),
        ('{"op": "subscribe", "app": "shop", "env": "c"}', "too_many_subscriptions"),
    ]:
        await ws.send_str(payload)
        message = await receive(ws)
        assert (message["type"], message["code"]) == ("error", code), (payload, message)
    await ws.send_bytes(b'{"op": "subscribe", "app": "shop", "env": "c"}')
    assert (await receive(ws))["code"] == "invalid_json"
    version = await publish(api, {"still": "open"})
    message = await receive(ws)
    assert (message["type"], message["env"], message["version"]) == ("release", "prod", version)
    await ws.close()


async def test_after_given_as_text_is_refused_not_read_as_a_number(api: Api) -> None:
    await api.app_with_env()
    for n in range(1, 6):
        await publish(api, {"n": str(n)})
    ws = await connect(api)
    await ws.send_json({"op": "subscribe", "app": "shop", "env": "prod", "after": "5"})
    refused = await receive(ws)
    assert (refused["type"], refused["code"]) == ("error", "invalid_request")
    assert "after" in refused["message"]
    # Refused means not subscribed: the next publish does not arrive.
    await publish(api, {"n": "6"})
    assert await nothing_within(ws, 0.5)
    await ws.close()


async def test_a_query_after_that_is_not_ascii_digits_is_an_error_message(api: Api) -> None:
    await api.app_with_env()
    await publish(api, {"a": "1"})
    for after in ("5x", "-1", "²", ""):
        ws = await connect(api, f"?app=shop&env=prod&after={after}")
        message = await receive(ws)
        assert (message["type"], message["code"]) == ("error", "invalid_request"), after
        await ws.send_json({"op": "subscribe", "app": "shop", "env": "prod"})
        assert (await receive(ws))["version"] == 1
        await ws.close()


async def test_a_store_outage_is_an_error_message_and_the_socket_stays_open(
    api: Api,
) -> None:
    await api.app_with_env()
    await api.call("POST", "/api/v1/apps/shop/envs", {"name": "later"})
    first = await publish(api, {"a": "1"})
    ws = await connect(api, "?app=shop&env=prod")
    # The subscription at open is in place once its release arrives; only then the outage.
    assert (await receive(ws))["version"] == first
    store = api.app[STORE]
    await store.close()
    try:
        # A never-published env is looked up in the store, which is closed.
        await ws.send_json({"op": "subscribe", "app": "shop", "env": "later"})
        message = await receive(ws)
        assert (message["type"], message["code"]) == ("error", "store_unavailable")
    finally:
        await store.open()
    version = await publish(api, {"back": "1"})
    assert (await receive(ws))["version"] == version
    await ws.close()


async def test_a_failure_of_the_server_closes_with_1011_and_is_logged_with_the_connection_id(
    api_factory: AppFactory, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt env row, written to the real SQLite file behind the server's back, makes the
    store's own row decoding raise a ValueError while a subscribe looks the env up."""
    caplog.set_level(logging.INFO, logger="server")
    api = await api_factory(sqlite_url)
    await api.call("POST", "/api/v1/apps", {"name": "shop", "envs": ["prod", "broken"]})
    bystander = await connect(api, "?app=shop&env=prod")
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE envs SET draft_revision = 'not a number' WHERE name = 'broken'")
    db.close()
    ws = await connect(api)
    await ws.send_json({"op": "subscribe", "app": "shop", "env": "broken"})
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == aiohttp.WSCloseCode.INTERNAL_ERROR
    reason = re.fullmatch(r"internal error \(connection (\d+)\)", str(closing.extra))
    assert reason is not None, closing.extra
    failed = [r for r in caplog.records if r.name == "server.watch.http" and r.exc_info]
    assert [r.getMessage() for r in failed] == [f"ws {reason[1]} failed; closing with 1011"]
    # The upgraded request never reached the HTTP error middleware.
    assert not [r for r in caplog.records if r.name == "server.http" and r.levelno >= logging.ERROR]
    # Only that socket was closed.
    version = await publish(api, {"a": "1"})
    assert (await receive(bystander))["version"] == version
    await bystander.close()


async def test_a_message_over_the_size_limit_closes_with_1009(api: Api) -> None:
    """The one message that does not leave the socket open: aiohttp cannot skip an oversized
    frame, so it closes with the protocol's "message too big" (never 1000, never 1011)."""
    ws = await connect(api)
    await ws.send_str("x" * (MAX_CLIENT_MESSAGE + 1))
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
