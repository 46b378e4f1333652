"""The instance list across the cluster: any replica lists every replica's instances within 2 s,
and a killed replica's instances leave the list once its lease expires."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.cluster.helpers import Cluster, Replica, last_version, until

pytestmark = [pytest.mark.cluster, pytest.mark.etcd, pytest.mark.mariadb]

# The contract: GET …/instances answers for the whole cluster within 2 s of any change.
WITHIN = 2.0
# A killed replica's registration lease: max(lock_ttl, 5) s (etcd_members), then the watch.
LEASE_SECONDS = 5.0
PER_REPLICA = 8


async def replica_id(replica: Replica) -> str:
    return str((await replica.cluster_view())["replica"])


async def instances(replica: Replica, app: str) -> dict[str, Any]:
    status, body = await replica.call("GET", f"/api/v1/apps/{app}/envs/prod/instances")
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def view(body: dict[str, Any]) -> dict[str, tuple[str, str, int | None, int | None]]:
    """instance -> (replica, transport, delivered, applied)."""
    return {
        i["instance"]: (i["replica"], i["transport"], i["delivered_version"], i["applied_version"])
        for i in body["instances"]
    }


async def everywhere(
    replicas: list[Replica], app: str, expected: dict[str, Any], what: str
) -> float:
    """Seconds until every replica lists exactly expected (bounded by WITHIN)."""
    started = time.monotonic()
    await until(lambda: _agreed(replicas, app, expected), within=WITHIN, what=what)
    return time.monotonic() - started


async def test_every_replica_lists_every_instance_and_a_killed_replicas_leave_with_its_lease(
    cluster: Cluster, replicas: list[Replica], app_name: str
) -> None:
    a = replicas[0]
    doomed = Replica(await asyncio.to_thread(cluster.new_replica), a.session, a.token)
    serving = [*replicas, doomed]
    ids = {r.url: await replica_id(r) for r in serving}
    await a.create_app(app_name)
    await a.set_items(app_name, {"k": "1"})
    status, body = await a.publish(app_name)
    assert status == 201, body

    sockets: dict[str, tuple[Replica, aiohttp.ClientWebSocketResponse]] = {}
    for n, replica in enumerate(serving):
        for m in range(PER_REPLICA):
            name = f"pod-{n}-{m}"
            ws = await replica.session.ws_connect(
                f"{replica.url}/api/v1/watch?app={app_name}&env=prod"
                f"&instance={name}&labels=replica:{n},slot:{m % 2}",
                headers={"Authorization": f"Bearer {replica.token}"},
            )
            sockets[name] = (replica, ws)
    for _, ws in sockets.values():
        assert await last_version(ws, 1) == 1
    # And one plain reader, on B.
    b = replicas[1]
    async with b.session.get(
        f"{b.url}/api/v1/apps/{app_name}/envs/prod/config",
        headers={"Authorization": f"Bearer {b.token}", "X-Config-Instance": "reader-b"},
    ) as response:
        assert response.status == 200

    expected: dict[str, Any] = {
        name: (ids[replica.url], "websocket", 1, None) for name, (replica, _) in sockets.items()
    }
    expected["reader-b"] = (ids[b.url], "http", 1, None)
    took = await everywhere(serving, app_name, expected, "every subscriber listed everywhere")

    # Half ack version 1; then version 2 reaches all and the other half acks it.
    acking = sorted(sockets)
    for name in acking[::2]:
        await sockets[name][1].send_json(
            {"op": "ack", "app": app_name, "env": "prod", "version": 1}
        )
        expected[name] = (*expected[name][:2], 1, 1)
    await a.set_items(app_name, {"k": "2"})
    status, body = await a.publish(app_name)
    assert status == 201, body
    for name, (_, ws) in sockets.items():
        assert await last_version(ws, 2) == 2
        expected[name] = (*expected[name][:2], 2, expected[name][3])
    for name in acking[1::2]:
        await sockets[name][1].send_json(
            {"op": "ack", "app": app_name, "env": "prod", "version": 2}
        )
        expected[name] = (*expected[name][:2], 2, 2)
    took_acks = await everywhere(serving, app_name, expected, "the acks listed everywhere")
    summary = (await instances(replicas[2], app_name))["summary"]
    # Running: what each acked, else what it was sent (the reader read 1).
    assert summary == {
        "total": len(expected),
        "by_version": {"1": len(acking[::2]) + 1, "2": len(acking[1::2])},
    }

    # A filter over the merged list.
    status, body = await replicas[2].call(
        "GET", f"/api/v1/apps/{app_name}/envs/prod/instances?label=replica:3,slot:1"
    )
    assert status == 200, body
    assert {i["instance"] for i in body["instances"]} == {
        f"pod-3-{m}" for m in range(PER_REPLICA) if m % 2
    }

    # Unsubscribing on one replica is seen on the others.
    gone_name = "pod-1-0"
    await sockets.pop(gone_name)[1].close()
    del expected[gone_name]
    took_close = await everywhere(serving, app_name, expected, "a closed socket unlisted")

    doomed.server.kill()
    killed = time.monotonic()
    for name in [n for n, (r, _) in sockets.items() if r is doomed]:
        del expected[name]
    await until(
        lambda: _agreed(replicas, app_name, expected),
        within=LEASE_SECONDS + WITHIN + 5,
        what="the killed replica's instances gone",
    )
    took_kill = time.monotonic() - killed
    print(
        f"\ninstances listed everywhere in {took:.2f} s, acks in {took_acks:.2f} s, "
        f"a close in {took_close:.2f} s; a SIGKILLed replica's gone in {took_kill:.2f} s "
        f"(lease {LEASE_SECONDS:g} s)"
    )
    for _, ws in sockets.values():
        await ws.close()


async def _agreed(replicas: list[Replica], app: str, expected: dict[str, Any]) -> bool:
    bodies = await asyncio.gather(*(instances(r, app) for r in replicas))
    return all(view(b) == expected for b in bodies)
