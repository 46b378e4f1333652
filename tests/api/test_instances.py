"""Instances on one server (SQLite): who names itself, how, for how long, and the list's filters.

Nothing here is stored, so SQLite alone covers it; the cluster view is tests/cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import InstancesSection
from server.keys import COORDINATOR, INSTANCES
from tests.api.helpers import ADMIN_PASSWORD, Api, make_config

ENV = "/api/v1/apps/shop/envs/prod"
WITHIN = 5.0

Start = Callable[..., Awaitable[Api]]


@pytest.fixture
def start(aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Start:
    """Start a standalone app on SQLite (an instance ttl, trusted proxies), signed in as admin,
    with shop/prod."""
    monkeypatch.setenv("CONFIGCENTER_ADMIN_PASSWORD", ADMIN_PASSWORD)

    async def started(ttl_seconds: int = 600, trusted_proxies: tuple[str, ...] = ()) -> Api:
        config = make_config(f"sqlite:///{tmp_path}/store.db", tmp_path)
        config = dataclasses.replace(
            config,
            instances=InstancesSection(ttl_seconds=ttl_seconds),
            server=dataclasses.replace(config.server, trusted_proxies=trusted_proxies),
        )
        client = await aiohttp_client(create_app(config))
        response = await client.post(
            "/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert response.status == 200, await response.text()
        api = Api(client, (await response.json())["token"])
        await api.app_with_env()
        return api

    return started


async def publish(api: Api, value: str) -> int:
    await api.set_items("shop", "prod", {"k": value})
    answer = await api.publish("shop", "prod")
    assert answer.status == 201, answer.text
    return int(answer.body["version"])


async def listing(api: Api, query: str = "") -> dict[str, Any]:
    answer = await api.call("GET", f"{ENV}/instances{query}")
    assert answer.status == 200, answer.text
    assert answer.text.endswith("\n")
    body: dict[str, Any] = answer.body
    return body


async def until_listed(
    api: Api, check: Callable[[dict[str, Any]], bool], what: str, query: str = ""
) -> dict[str, Any]:
    """The listing once check accepts it (the server handles a socket's ops on its own task)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while True:
        body = await listing(api, query)
        if check(body):
            return body
        if loop.time() > deadline:
            pytest.fail(f"{what}: not within {WITHIN} s; last listing {body}")
        await asyncio.sleep(0.02)


def names(body: dict[str, Any]) -> list[str]:
    return [i["instance"] for i in body["instances"]]


async def watch(api: Api, query: str = "") -> aiohttp.ClientWebSocketResponse:
    return await api.client.ws_connect(
        f"/api/v1/watch{query}", headers={"Authorization": f"Bearer {api.token}"}
    )


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=WITHIN)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data: dict[str, Any] = message.json()
    return data


async def test_a_subscriber_is_listed_with_what_it_was_sent_and_what_it_acked(
    start: Start,
) -> None:
    api = await start()
    replica = api.app[COORDINATOR].replica_id
    first = await publish(api, "1")
    ws = await watch(api)
    await ws.send_json(
        {
            "op": "subscribe",
            "app": "shop",
            "env": "prod",
            "instance": "pod-1",
            "labels": {"zone": "eu-1", "team": "pay"},
        }
    )
    assert (await receive(ws))["version"] == first
    anonymous = await watch(api, "?app=shop&env=prod")  # no instance id: not an instance
    assert (await receive(anonymous))["version"] == first
    body = await until_listed(api, lambda b: b["summary"]["total"] == 1, "pod-1 listed")
    [pod] = body["instances"]
    assert pod["instance"] == "pod-1"
    assert pod["labels"] == {"zone": "eu-1", "team": "pay"}
    assert pod["replica"] == replica
    assert pod["transport"] == "websocket"
    assert pod["address"] == "127.0.0.1"
    assert pod["delivered_version"] == first
    assert pod["applied_version"] is None
    assert pod["gray"] is False
    assert pod["connected_at"].endswith("Z")
    assert pod["last_seen"] >= pod["connected_at"]
    assert body["summary"] == {"total": 1, "by_version": {str(first): 1}}

    await ws.send_json({"op": "ack", "app": "shop", "env": "prod", "version": first})
    await until_listed(api, lambda b: b["instances"][0]["applied_version"] == first, "the ack")
    second = await publish(api, "2")
    assert (await receive(ws))["version"] == second
    body = await until_listed(
        api, lambda b: b["instances"][0]["delivered_version"] == second, "the push"
    )
    # It runs what it applied until it acks the newer one.
    assert body["instances"][0]["applied_version"] == first
    assert body["summary"]["by_version"] == {str(first): 1}
    await ws.send_json({"op": "ack", "app": "shop", "env": "prod", "version": second})
    await until_listed(
        api, lambda b: b["summary"]["by_version"] == {str(second): 1}, "the second ack"
    )
    # An older ack arriving late does not move it back.
    await ws.send_json({"op": "ack", "app": "shop", "env": "prod", "version": first})
    await ws.send_json({"op": "unsubscribe", "app": "shop", "env": "nowhere"})
    await asyncio.sleep(0)
    assert (await listing(api))["instances"][0]["applied_version"] == second

    await ws.send_json({"op": "unsubscribe", "app": "shop", "env": "prod"})
    await until_listed(api, lambda b: b["summary"]["total"] == 0, "gone after unsubscribe")
    await ws.send_json({"op": "subscribe", "app": "shop", "env": "prod", "instance": "pod-1"})
    await until_listed(api, lambda b: names(b) == ["pod-1"], "back after subscribing again")
    await ws.close()
    await until_listed(api, lambda b: b["summary"]["total"] == 0, "gone after close")
    await anonymous.close()


async def test_the_query_form_names_the_instance_and_the_newest_subscription_wins(
    start: Start,
) -> None:
    api = await start()
    await publish(api, "1")
    old = await watch(api, "?app=shop&env=prod&instance=pod-2&labels=zone:eu-1,tier:web")
    await receive(old)
    body = await until_listed(api, lambda b: names(b) == ["pod-2"], "pod-2 listed")
    assert body["instances"][0]["labels"] == {"zone": "eu-1", "tier": "web"}
    # The same id again (a reconnect before the old socket is gone): one record, the new one's.
    new = await watch(api, "?app=shop&env=prod&after=1&instance=pod-2&labels=zone:eu-2")
    body = await until_listed(
        api, lambda b: b["instances"][0]["labels"] == {"zone": "eu-2"}, "the newer subscription"
    )
    assert body["summary"]["total"] == 1
    await old.close()
    await asyncio.sleep(0.1)
    assert names(await listing(api)) == ["pod-2"], "closing the old socket kept the new record"
    await new.close()
    await until_listed(api, lambda b: b["summary"]["total"] == 0, "gone")


BAD_IDENTITIES: list[dict[str, Any]] = [
    {"instance": "has space"},
    {"instance": ""},
    {"instance": "x" * 129},
    {"instance": 7},
    {"instance": "pod", "labels": {"Zone": "eu"}},
    {"instance": "pod", "labels": {"zone": ""}},
    {"instance": "pod", "labels": {"zone": "x" * 129}},
    {"instance": "pod", "labels": {"zone": "eu\u0000"}},
    {"instance": "pod", "labels": {f"k{n}": "v" for n in range(17)}},
    {"labels": {"zone": "eu"}},
]


async def test_an_identity_out_of_pattern_refuses_the_subscription_and_keeps_the_socket(
    start: Start,
) -> None:
    api = await start()
    version = await publish(api, "1")
    ws = await watch(api)
    for identity in BAD_IDENTITIES:
        await ws.send_json({"op": "subscribe", "app": "shop", "env": "prod", **identity})
        error = await receive(ws)
        assert (error["type"], error["code"]) == ("error", "invalid_request"), identity
    # Refused, not subscribed: no release came, and the socket takes a good subscription.
    await ws.send_json({"op": "subscribe", "app": "shop", "env": "prod", "instance": "good"})
    message = await receive(ws)
    assert (message["type"], message["version"]) == ("release", version)
    assert names(await until_listed(api, lambda b: b["summary"]["total"] == 1, "good")) == ["good"]
    await ws.close()


async def test_a_query_identity_out_of_pattern_refuses_the_subscription_at_open(
    start: Start,
) -> None:
    api = await start()
    await publish(api, "1")
    ws = await watch(api, "?app=shop&env=prod&instance=pod&labels=zone")
    error = await receive(ws)
    assert (error["type"], error["code"]) == ("error", "invalid_request")
    await ws.send_json({"op": "ack", "app": "shop", "env": "prod", "version": 1})
    assert (await receive(ws))["code"] == "invalid_request"  # not subscribed
    assert not ws.closed
    assert (await listing(api))["summary"]["total"] == 0
    await ws.close()


async def test_an_ack_needs_an_identified_subscription_and_a_published_version(
    start: Start,
) -> None:
    api = await start()
    version = await publish(api, "1")
    ws = await watch(api, "?app=shop&env=prod")
    await receive(ws)
    bad = [
        ({"op": "ack", "app": "shop", "env": "prod", "version": version}, "an instance"),
        ({"op": "ack", "app": "shop", "env": "dev", "version": 1}, "not subscribed"),
        ({"op": "ack", "app": "shop", "env": "prod"}, "version"),
        ({"op": "ack", "app": "shop", "env": "prod", "version": "1"}, "version"),
        ({"op": "ack", "app": "shop", "env": "prod", "version": 1, "x": 1}, "unknown field"),
    ]
    for op, said in bad:
        await ws.send_json(op)
        error = await receive(ws)
        assert (error["type"], error["code"]) == ("error", "invalid_request"), op
        assert said in error["message"], error
    await ws.send_json({"op": "subscribe", "app": "shop", "env": "prod", "instance": "pod"})
    assert (await receive(ws))["type"] == "release"  # no after: sent again
    await ws.send_json({"op": "ack", "app": "shop", "env": "prod", "version": version + 1})
    error = await receive(ws)
    assert "not published" in error["message"], error
    body = await listing(api)
    assert body["instances"][0]["applied_version"] is None
    await ws.close()


async def test_http_readers_name_themselves_by_header_or_query_and_anonymous_ones_do_not(
    start: Start,
) -> None:
    api = await start()
    version = await publish(api, "1")
    plain = await api.call(
        "GET",
        f"{ENV}/config",
        headers={"X-Config-Instance": "web-1", "X-Config-Labels": "zone=eu-1, tier=web"},
    )
    assert plain.status == 200
    etag = plain.headers["ETag"]
    again = await api.call(
        "GET",
        f"{ENV}/config",
        headers={"X-Config-Instance": "web-2", "If-None-Match": etag},
    )
    assert again.status == 304
    by_query = await api.call(
        "GET", f"{ENV}/config?format=properties&instance=web-3&labels=zone:us-1"
    )
    assert by_query.status == 200
    anonymous = await api.call("GET", f"{ENV}/config")
    assert anonymous.status == 200
    body = await listing(api)
    assert names(body) == ["web-1", "web-2", "web-3"]
    web1, web2, web3 = body["instances"]
    assert (web1["transport"], web1["labels"]) == ("http", {"zone": "eu-1", "tier": "web"})
    assert (web2["labels"], web3["labels"]) == ({}, {"zone": "us-1"})
    for reader in body["instances"]:
        assert (reader["delivered_version"], reader["applied_version"]) == (version, None)
        assert reader["address"] == "127.0.0.1"

    # A long poll is listed while it waits, and with what it was answered.
    waiting = asyncio.create_task(
        api.call(
            "GET", f"{ENV}/config?after={version}&wait=10", headers={"X-Config-Instance": "poller"}
        )
    )
    await until_listed(
        api,
        lambda b: [i["transport"] for i in b["instances"]] == ["longpoll"],
        "the waiting long poll",
        "?transport=longpoll",
    )
    newer = await publish(api, "2")
    answer = await waiting
    assert (answer.status, answer.body["version"]) == (200, newer)
    [poller] = (await listing(api, "?transport=longpoll"))["instances"]
    assert (poller["instance"], poller["delivered_version"]) == ("poller", newer)
    # Reading again with other labels updates the record.
    await api.call(
        "GET",
        f"{ENV}/config",
        headers={"X-Config-Instance": "web-1", "X-Config-Labels": "zone=eu-2"},
    )
    assert (await listing(api, "?label=zone:eu-2"))["instances"][0]["instance"] == "web-1"


BAD_READERS: list[dict[str, str]] = [
    {"X-Config-Instance": "has space"},
    {"X-Config-Instance": "x" * 129},
    {"X-Config-Instance": "pod", "X-Config-Labels": "zone"},
    {"X-Config-Instance": "pod", "X-Config-Labels": "Zone=eu"},
    {"X-Config-Instance": "pod", "X-Config-Labels": "zone=eu, zone=us"},
    {"X-Config-Instance": "pod", "X-Config-Labels": "zone="},
    {"X-Config-Instance": "pod", "X-Config-Labels": ",".join(f"k{n}=v" for n in range(17))},
]


async def test_a_reader_out_of_pattern_is_served_not_listed_and_logged(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    api = await start()
    version = await publish(api, "1")
    registry = api.app[INSTANCES]
    for headers in BAD_READERS:
        registry._warned_at = 0.0  # each one logged (warnings are spaced out in production)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="server.instances"):
            answer = await api.call("GET", f"{ENV}/config", headers=headers)
        assert (answer.status, answer.body["version"]) == (200, version), headers
        assert (await listing(api))["summary"]["total"] == 0, headers
        assert any("out of pattern" in r.getMessage() for r in caplog.records), headers
    by_query = await api.call("GET", f"{ENV}/config?instance=a%20b")
    assert by_query.status == 200
    assert (await listing(api))["summary"]["total"] == 0


async def test_behind_a_trusted_proxy_the_address_is_the_client_it_forwarded_for(
    start: Start,
) -> None:
    api = await start(trusted_proxies=("127.0.0.1",))
    await publish(api, "1")
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    await api.call("GET", f"{ENV}/config", headers={**forwarded, "X-Config-Instance": "reader"})
    ws = await api.client.ws_connect(
        "/api/v1/watch?app=shop&env=prod&instance=socket",
        headers={**forwarded, "Authorization": f"Bearer {api.token}"},
    )
    await receive(ws)
    body = await until_listed(api, lambda b: b["summary"]["total"] == 2, "both listed")
    assert [i["address"] for i in body["instances"]] == ["203.0.113.7", "203.0.113.7"]
    await ws.close()


async def test_an_http_reader_leaves_the_list_ttl_after_its_last_read(start: Start) -> None:
    api = await start(ttl_seconds=1)
    await publish(api, "1")
    ws = await watch(api, "?app=shop&env=prod&instance=socket")
    await receive(ws)
    await api.call("GET", f"{ENV}/config", headers={"X-Config-Instance": "reader"})
    assert names(await listing(api)) == ["reader", "socket"]
    loop = asyncio.get_running_loop()
    read_at = loop.time()
    body = await until_listed(api, lambda b: names(b) == ["socket"], "the reader expired")
    assert loop.time() - read_at >= 0.9
    # The sweep forgets it too (not only the listing): nothing is held for it.
    await until_listed(api, lambda _: len(api.app[INSTANCES]) == 1, "the sweep")
    assert body["instances"][0]["transport"] == "websocket"  # subscribers stay while connected
    await ws.close()


async def test_the_list_filters_by_label_version_replica_and_transport(start: Start) -> None:
    api = await start()
    replica = api.app[COORDINATOR].replica_id
    first = await publish(api, "1")
    sockets = []
    for name, labels in (("a", "zone:eu,tier:web"), ("b", "zone:eu,tier:db"), ("c", "zone:us")):
        ws = await watch(api, f"?app=shop&env=prod&instance={name}&labels={labels}")
        await receive(ws)
        sockets.append(ws)
    await sockets[0].send_json({"op": "ack", "app": "shop", "env": "prod", "version": first})
    second = await publish(api, "2")
    for ws in sockets:
        await receive(ws)
    await sockets[1].send_json({"op": "ack", "app": "shop", "env": "prod", "version": second})
    await api.call("GET", f"{ENV}/config", headers={"X-Config-Instance": "d"})
    await until_listed(
        api,
        lambda b: b["summary"]["by_version"] == {str(first): 1, str(second): 3},
        "versions: a on 1 (acked), b acked 2, c sent 2, d read 2",
    )
    cases = {
        "?label=zone:eu": ["a", "b"],
        "?label=zone=eu,tier:db": ["b"],
        "?label=zone:mars": [],
        f"?version={first}": ["a"],
        f"?version={second}": ["b", "c", "d"],
        f"?replica={replica}": ["a", "b", "c", "d"],
        "?replica=elsewhere": [],
        "?transport=http": ["d"],
        "?transport=websocket&label=zone:us": ["c"],
    }
    for query, expected in cases.items():
        body = await listing(api, query)
        assert names(body) == expected, query
        assert body["summary"]["total"] == len(expected), query
    for ws in sockets:
        await ws.close()


async def test_a_bad_filter_is_a_400_with_the_envelope(start: Start) -> None:
    api = await start()
    for query in (
        "?label=",
        "?label=zone",
        "?label=Zone:eu",
        "?label=zone:eu,",
        "?version=0",
        "?version=x",
        "?version=%C2%B2",
        "?replica=",
        "?transport=carrier-pigeon",
    ):
        answer = await api.call("GET", f"{ENV}/instances{query}")
        assert answer.status == 400, (query, answer.text)
        assert answer.body["error"]["code"] == "invalid_request", query


async def test_the_list_of_an_env_that_does_not_exist_is_a_404(start: Start) -> None:
    api = await start()
    for path in ("/api/v1/apps/shop/envs/nowhere", "/api/v1/apps/ghost/envs/prod"):
        answer = await api.call("GET", f"{path}/instances")
        assert answer.status == 404
        assert answer.body["error"]["code"] == "not_found"
    # Never published: an empty list, not an error.
    assert await listing(api) == {"instances": [], "summary": {"total": 0, "by_version": {}}}


async def test_deleting_the_env_forgets_its_instances(start: Start) -> None:
    api = await start()
    await api.call("POST", "/api/v1/apps/shop/envs", {"name": "dev"})
    await publish(api, "1")
    ws = await watch(api, "?app=shop&env=prod&instance=pod")
    await receive(ws)
    await api.call("GET", f"{ENV}/config", headers={"X-Config-Instance": "reader"})
    assert (await listing(api))["summary"]["total"] == 2
    assert (await api.call("DELETE", ENV)).status == 204
    assert (await receive(ws))["code"] == "env_deleted"
    assert len(api.app[INSTANCES]) == 0
    await ws.close()
