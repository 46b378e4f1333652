"""Gray releases across 3 replicas (real etcd, MariaDB): 200 labelled subscribers spread over
the replicas; a gray release by label reaches exactly the matching ones on every replica and
nobody else; widened to a percent, promoted, then a second one abandoned; a plain reader with
instance headers gets the gray release on any replica."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.records import in_percent
from tests.cluster.helpers import Cluster, Replica, last_version, until

pytestmark = [pytest.mark.cluster, pytest.mark.etcd, pytest.mark.mariadb]

SUBSCRIBERS = 200
QUIET = 0.5  # after the matching ones have it, how long the others must hear nothing
# How long a faulty replica waits where it is killed: far longer than the test needs to
# kill it, so the kill never races the load.
HOLD_SECONDS = 30.0

Socket = tuple[str, dict[str, str], aiohttp.ClientWebSocketResponse]


async def subscribe(
    session: aiohttp.ClientSession, replicas: list[Replica], app: str, count: int = SUBSCRIBERS
) -> list[Socket]:
    sockets: list[Socket] = []
    for n in range(count):
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


@contextlib.asynccontextmanager
async def published_fleet(
    replicas: list[Replica], app: str, count: int = SUBSCRIBERS
) -> AsyncIterator[tuple[int, list[Socket]]]:
    """The app published once and `count` labelled subscribers spread over the replicas,
    each holding that first version; closed after."""
    a = replicas[0]
    await a.create_app(app)
    await a.set_items(app, {"k": "blue"})
    status, body = await a.publish(app)
    assert status == 201, body
    main = int(body["version"])
    # Sockets of their own: a session's connector holds 100 connections by default.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sockets: list[Socket] = []
    try:
        sockets = await subscribe(session, replicas, app, count)
        await asyncio.gather(*(last_version(ws, main) for _, _, ws in sockets))
        yield main, sockets
    finally:
        await asyncio.gather(*(ws.close() for _, _, ws in sockets))
        await session.close()


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
    async with published_fleet(replicas, app_name) as (main, sockets):
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


async def killed_mid_promote(doomed: Replica, app: str, marker: str) -> None:
    """Promote on a faulty replica and kill -9 it where its log says it waits."""
    pending = asyncio.create_task(doomed.call("POST", f"/api/v1/apps/{app}/envs/prod/gray/promote"))
    await until(lambda: marker in doomed.server.log_text(), what=f"{doomed.url}: {marker}")
    doomed.server.kill()
    with pytest.raises(aiohttp.ClientError):
        await pending


async def promotes(replica: Replica, app: str) -> int:
    status, body = await replica.call("GET", f"/api/v1/audit?app={app}&action=gray.promote")
    assert status == 200, body
    return len(body["entries"])


async def test_a_replica_killed_during_promote_promotes_once_or_not_at_all(
    cluster: Cluster, replicas: list[Replica], app_name: str
) -> None:
    a, b, c = replicas
    env = f"/api/v1/apps/{app_name}/envs/prod"
    async with published_fleet(replicas, app_name, 30) as (_, sockets):
        await a.set_items(app_name, {"k": "green"})
        status, body = await a.call(
            "POST", f"{env}/gray", {"rule": {"labels": {"track": "canary"}}}
        )
        assert status == 201, body
        gray = body["version"]
        canaries = [s for s in sockets if s[1]["track"] == "canary"]
        rest = [s for s in sockets if s not in canaries]
        await reached(canaries, gray, True)

        # Killed holding the lock, before the store: the promote did not happen.
        holder = Replica(
            await asyncio.to_thread(cluster.faulty_replica, HOLD_SECONDS), a.session, a.token
        )
        await killed_mid_promote(
            holder, app_name, f"fault injection: holding the lock of {app_name}/prod"
        )
        assert await promotes(b, app_name) == 0
        for replica in replicas:
            status, body = await replica.call("GET", f"{env}/gray")
            assert (status, body["version"]) == (200, gray), body
        await silent(rest)

        # Killed after the store's commit, before etcd: it happened, once; the others'
        # refresh finds the store's step ahead of etcd's once the dead lock's lease is gone,
        # and every subscriber converges.
        late = Replica(
            await asyncio.to_thread(cluster.late_distributor, HOLD_SECONDS), a.session, a.token
        )
        await killed_mid_promote(late, app_name, f"fault injection: committed {app_name}/prod")
        await reached(rest, gray, False)
        await silent(canaries)
        repaired = f"{app_name}/prod version {gray} written to etcd from the store"
        assert any(repaired in r.server.log_text() for r in replicas)
        assert await promotes(c, app_name) == 1
        for replica in replicas:
            assert await replica.config_version(app_name) == gray
            status, body = await replica.call("GET", f"{env}/gray")
            assert (status, body["error"]["code"]) == (404, "no_gray"), body
        status, body = await b.call("POST", f"{env}/gray/promote", {})
        assert (status, body["error"]["code"]) == (404, "no_gray"), body
