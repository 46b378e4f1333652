"""Gray releases across 3 replicas (real etcd, MariaDB): 200 labelled subscribers spread over
the replicas; a gray release by label reaches exactly the matching ones on every replica and
nobody else; widened to a percent, promoted, then a second one abandoned; a plain reader with
instance headers gets the gray release on any replica."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import aiohttp
import pytest

from server.records import in_percent
from tests.cluster.helpers import Replica, last_version

pytestmark = [pytest.mark.cluster, pytest.mark.etcd, pytest.mark.mariadb]

SUBSCRIBERS = 200
QUIET = 0.5  # after the matching ones have it, how long the others must hear nothing

Socket = tuple[str, dict[str, str], aiohttp.ClientWebSocketResponse]


async def subscribe(
    session: aiohttp.ClientSession, replicas: list[Replica], app: str
) -> list[Socket]:
    sockets: list[Socket] = []
    for n in range(SUBSCRIBERS):
        replica = replicas[n % len(replicas)]
        instance = f"pod-{n}"
        labels = {"track": "canary" if n % 5 == 0 else "stable", "replica": str(n % 3)}
        ws = await session.ws_connect(
            f"{replica.url}/api/v1/watch", headers={"Authorization": f"Bearer {replica.token}"}
        )
        await ws.send_json(
            {"op": "subscribe", "app": app, "env": "prod", "instance": instance, "labels": labels}
        )
        sockets.append((instance, labels, ws))
    return sockets


async def next_release(ws: aiohttp.ClientWebSocketResponse, within: float) -> dict[str, Any]:
    message = await ws.receive(timeout=within)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data: dict[str, Any] = message.json()
    assert data["type"] == "release", data
    return data


async def reached(sockets: list[Socket], version: int, gray: bool) -> None:
    """Each of these sockets is sent exactly `version` next, with that gray flag."""

    async def one(socket: Socket) -> None:
        data = await next_release(socket[2], 15.0)
        assert (data["version"], data["gray"]) == (version, gray), (socket[0], data)

    await asyncio.gather(*(one(s) for s in sockets))


async def silent(sockets: list[Socket]) -> None:
    """None of these sockets is sent anything for QUIET seconds."""

    async def one(socket: Socket) -> None:
        try:
            message = await socket[2].receive(timeout=QUIET)
        except TimeoutError:
            return
        raise AssertionError(f"{socket[0]} was sent {message.data}")

    await asyncio.gather(*(one(s) for s in sockets))


async def test_a_gray_release_reaches_exactly_its_instances_on_every_replica(
    replicas: list[Replica], app_name: str
) -> None:
    a, b, c = replicas
    await a.create_app(app_name)
    await a.set_items(app_name, {"k": "blue"})
    status, body = await a.publish(app_name)
    assert status == 201, body
    main = body["version"]
    # Sockets of their own: a session's connector holds 100 connections by default.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sockets = await subscribe(session, replicas, app_name)
    try:
        await asyncio.gather(*(last_version(ws, main) for _, _, ws in sockets))
        env = f"/api/v1/apps/{app_name}/envs/prod"

        # By label, started on A: the canaries on A, B and C get V, nobody else anything.
        await a.set_items(app_name, {"k": "green"})
        status, body = await a.call(
            "POST", f"{env}/gray", {"rule": {"labels": {"track": "canary"}}}
        )
        assert status == 201, body
        gray = body["version"]
        canaries = [s for s in sockets if s[1]["track"] == "canary"]
        assert len(canaries) == SUBSCRIBERS // 5
        assert {s[1]["replica"] for s in canaries} == {"0", "1", "2"}
        await reached(canaries, gray, True)
        others = [s for s in sockets if s not in canaries]
        await silent(others)
        # Every replica answers an identified reader with V, an anonymous one with the main.
        for replica in replicas:
            async with replica.session.get(
                f"{replica.url}{env}/config",
                headers={
                    "Authorization": f"Bearer {replica.token}",
                    "X-Config-Instance": "reader-1",
                    "X-Config-Labels": "track=canary",
                },
            ) as answer:
                assert (await answer.json())["version"] == gray
            status, body = await replica.call("GET", f"{env}/config")
            assert body["version"] == main

        # Widened to 10 % then 50 % on B: those the stable hash takes now, at once.
        taken = {s[0] for s in canaries}
        for percent in (10, 50):
            status, body = await b.call(
                "PATCH",
                f"{env}/gray",
                {"rule": {"labels": {"track": "canary"}, "percent": percent}},
            )
            assert status == 200, body
            newly = [
                s
                for s in sockets
                if s[0] not in taken and in_percent(app_name, "prod", s[0], percent)
            ]
            assert newly, f"{percent} % takes none of {SUBSCRIBERS}"
            await reached(newly, gray, True)
            taken.update(s[0] for s in newly)
            await silent([s for s in sockets if s[0] not in taken])
        digest = hashlib.sha256(f"{app_name}/prod/pod-1".encode()).hexdigest()
        assert (int(digest, 16) % 100 < 50) == in_percent(app_name, "prod", "pod-1", 50)

        # Promoted on C: the rest get V, the gray ones nothing again.
        status, body = await c.call("POST", f"{env}/gray/promote", {})
        assert status == 200, body
        rest = [s for s in sockets if s[0] not in taken]
        await reached(rest, gray, False)
        await silent([s for s in sockets if s[0] in taken])
        for replica in replicas:
            assert await replica.config_version(app_name) == gray

        # A second gray release, abandoned on A: everyone moves up to V+1 with V's items.
        await a.set_items(app_name, {"k": "red"})
        status, body = await a.call("POST", f"{env}/gray", {"rule": {"instances": ["pod-1"]}})
        assert status == 201, body
        second = body["version"]
        [pod1] = [s for s in sockets if s[0] == "pod-1"]
        await reached([pod1], second, True)
        status, body = await a.call("POST", f"{env}/gray/abandon", {})
        assert status == 201, body
        assert body["items"] == {"k": "green"}
        await reached(sockets, second + 1, False)
        for replica in replicas:
            assert await replica.config_version(app_name) == second + 1
    finally:
        await asyncio.gather(*(ws.close() for _, _, ws in sockets))
        await session.close()
