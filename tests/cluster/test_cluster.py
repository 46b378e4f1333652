"""Cluster mode end to end: three replica processes, one MariaDB, a 3-member etcd cluster."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import aetcd
import aiohttp
import pytest

from devservices import ServerProcess, free_port
from server.coord.etcd_keys import decode_release
from tests.cluster.helpers import (
    KEYS,
    LOCK_TTL,
    Cluster,
    Replica,
    close_frame,
    last_version,
    until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.etcd, pytest.mark.mariadb]

# How long a faulty replica holds a publish lock before writing the store: far longer than
# any test needs to act on it, so pausing or killing it in time never depends on the load.
HOLD_SECONDS = 30.0


async def holder_of(replica: Replica, app: str) -> str | None:
    """The replica id holding the publish lock of app/prod, per the cluster view."""
    for holder in (await replica.cluster_view())["lock_holders"]:
        if holder["app"] == app:
            return str(holder["replica"])
    return None


def replica_id_prefix(replica: Replica | Any) -> str:
    port = replica.port if hasattr(replica, "port") else replica.server.port
    return f"127.0.0.1:{port}-"


async def mid_publish(replica: Replica, app: str) -> None:
    """Wait until a faulty replica holds the lock of app/prod, before it writes the store.

    Its log says so once it has left the lock's wait loop (a claim alone is not a hold: the
    claim exists while it still waits its turn).
    """
    marker = f"fault injection: holding the lock of {app}/prod"
    await until(lambda: marker in replica.server.log_text(), what=f"{replica.url} holding the lock")
    holder = await holder_of(replica, app)
    assert holder is not None, "the lock has no holder"
    assert holder.startswith(replica_id_prefix(replica)), holder


async def test_1_publish_on_a_reaches_subscribers_on_b_and_c(
    replicas: list[Replica], app_name: str
) -> None:
    a, b, c = replicas
    await a.create_app(app_name)
    ws_b, ws_c = await b.watch(app_name), await c.watch(app_name)
    poll = asyncio.create_task(
        c.call("GET", f"/api/v1/apps/{app_name}/envs/prod/config?after=0&wait=20")
    )
    arrived: dict[str, float] = {}

    async def receive(name: str, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        message = await ws.receive(timeout=10)
        arrived[name] = time.perf_counter()
        data: dict[str, Any] = message.json()
        return data

    receivers = [asyncio.create_task(receive("B", ws_b)), asyncio.create_task(receive("C", ws_c))]
    await a.set_items(app_name, {"greeting": "hello"})
    # Only so that the printed timings start with the long poll and the receivers waiting;
    # a poll or socket that arrives after the publish gets version 1 at once all the same.
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    status, body = await a.publish(app_name)
    acked = time.perf_counter()
    assert status == 201, body
    for data in await asyncio.gather(*receivers):
        assert (data["app"], data["version"], data["items"]) == (
            app_name,
            1,
            {"greeting": "hello"},
        )
    poll_status, poll_body = await poll
    assert poll_status == 200
    assert poll_body["version"] == 1

    def ms(at: float) -> str:
        return f"{(at - started) * 1000:.1f} ms"

    print(
        f"\nfrom the start of the publish request on A: answered after {ms(acked)}, "
        f"received on B after {ms(arrived['B'])}, on C after {ms(arrived['C'])}"
    )
    await ws_b.close()
    await ws_c.close()


async def test_2_concurrent_publishes_on_three_replicas(
    replicas: list[Replica], app_name: str, raw_etcd: aetcd.Client
) -> None:
    await replicas[0].create_app(app_name)
    sockets = [await r.watch(app_name) for r in replicas]
    acknowledged: list[int] = []
    retries = 0

    async def publish_once(replica: Replica, n: int) -> None:
        nonlocal retries
        for attempt in range(100):
            await replica.set_items(app_name, {f"k{n}": str(attempt)})
            status, body = await replica.publish(app_name)
            if status == 201:
                acknowledged.append(body["version"])
                return
            # Another publish took our edit with it: edit again and publish again.
            assert (status, body["error"]["code"]) == (409, "nothing_to_publish"), body
            retries += 1
        pytest.fail("a publish never got through")

    await asyncio.gather(
        *(publish_once(r, i * 3 + j) for i in range(20) for j, r in enumerate(replicas))
    )
    print(f"\n60 publishes acknowledged ({retries} re-edits after nothing_to_publish)")
    assert sorted(acknowledged) == list(range(1, 61))
    assert await replicas[1].store_versions(app_name) == list(range(1, 61))
    for ws in sockets:
        assert await last_version(ws, 60) == 60
        await ws.close()
    for replica in replicas:
        assert await replica.config_version(app_name) == 60
    record = await raw_etcd.get(KEYS.release(app_name, "prod"))
    assert record is not None
    in_etcd = decode_release(record.value).release
    status, stored = await replicas[2].call("GET", f"/api/v1/apps/{app_name}/envs/prod/releases/60")
    assert status == 200
    assert (in_etcd.version, in_etcd.checksum, in_etcd.items) == (
        60,
        stored["checksum"],
        stored["items"],
    )


async def test_3_kill_9_of_the_lock_holder(
    cluster: Cluster, replicas: list[Replica], app_name: str
) -> None:
    a = replicas[0]
    doomed = Replica(
        await asyncio.to_thread(cluster.faulty_replica, HOLD_SECONDS), a.session, a.token
    )
    await a.create_app(app_name)
    await a.set_items(app_name, {"k": "v"})
    stuck = asyncio.create_task(doomed.publish(app_name))
    await mid_publish(doomed, app_name)
    doomed.server.kill()
    killed = time.monotonic()
    status, body = await a.publish(app_name)
    waited = time.monotonic() - killed
    assert status == 201, body
    assert body["version"] == 1
    with pytest.raises(aiohttp.ClientError):
        await stuck
    print(
        f"\nafter kill -9 of the holder, another replica published in {waited:.2f} s "
        f"(lock_ttl {LOCK_TTL} s)"
    )
    # It waited for the lease to expire (about lock_ttl), not for the hold or its own wait
    # limit (30 s); the bound is loose so that a loaded machine does not matter.
    assert waited < HOLD_SECONDS / 2
    assert await a.store_versions(app_name) == [1]


async def test_4_a_paused_holder_is_fenced_out(
    cluster: Cluster, replicas: list[Replica], app_name: str
) -> None:
    a, b, c = replicas
    paused = Replica(
        await asyncio.to_thread(cluster.faulty_replica, HOLD_SECONDS), a.session, a.token
    )
    await a.create_app(app_name)
    await a.set_items(app_name, {"k": "v1"})
    pending = asyncio.create_task(paused.publish(app_name))
    await mid_publish(paused, app_name)
    paused.server.pause()  # mid-publish: lock held, store not yet written
    try:
        await until(
            lambda: _not(holder_of(b, app_name)), within=LOCK_TTL + 10, what="its lease expired"
        )
        status, body = await b.publish(app_name)
        assert status == 201, body
        assert body["version"] == 1
    finally:
        paused.server.resume()
    # Once it runs again it sees its lease gone, ends the hold and goes to the store, which
    # refuses its fence: B's newer one is on the env row.
    status, body = await pending
    assert (status, body["error"]["code"]) == (409, "lock_lost"), body
    assert await a.store_versions(app_name) == [1]
    await c.set_items(app_name, {"k": "v2"})
    status, body = await c.publish(app_name)
    assert (status, body["version"]) == (201, 2)
    assert await a.store_versions(app_name) == [1, 2]
    for replica in [*replicas, paused]:
        await until(functools.partial(_has_version, replica, app_name, 2), what="version 2")
    await asyncio.to_thread(paused.server.stop)


async def test_5_kill_the_etcd_leader_during_publishes(
    cluster: Cluster, replicas: list[Replica], app_name: str
) -> None:
    await replicas[0].create_app(app_name)
    sockets = [await r.watch(app_name) for r in replicas]
    acknowledged: list[int] = []
    refused: list[tuple[int, str]] = []
    killed_at: list[int] = []
    leader = ""

    async def stream() -> None:
        n = 0
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            replica = replicas[n % 3]
            n += 1
            await replica.set_items(app_name, {"n": str(n)})
            status, body = await replica.publish(app_name)
            if status == 201:
                acknowledged.append(body["version"])
            else:
                refused.append((status, body["error"]["code"]))
            if killed_at and len(acknowledged) >= killed_at[0] + 8:
                return

    publisher = asyncio.create_task(stream())
    await until(lambda: len(acknowledged) >= 5, what="5 publishes before the kill")
    leader = await asyncio.to_thread(cluster.etcd.wait_for_leader)
    await asyncio.to_thread(cluster.etcd.kill_member, leader)
    killed_at.append(len(acknowledged))
    try:
        await asyncio.wait_for(publisher, 60)
    finally:
        await asyncio.to_thread(cluster.etcd.start_member, leader)
    after = len(acknowledged) - killed_at[0]
    print(
        f"\nleader {leader} killed after {killed_at[0]} publishes; {after} acknowledged "
        f"after it; refused meanwhile: {refused}"
    )
    assert after >= 8, "publishes did not resume after the election"
    assert {code for _, code in refused} <= {"coordinator_unavailable", "lock_lost", "lock_timeout"}
    stored = await replicas[0].store_versions(app_name)
    assert set(acknowledged) <= set(stored)
    assert stored == list(range(1, len(stored) + 1))
    for ws in sockets:
        assert await last_version(ws, stored[-1]) == stored[-1]
        await ws.close()


async def test_6_all_of_etcd_down_then_back(
    cluster: Cluster, replicas: list[Replica], app_name: str
) -> None:
    a, b, c = replicas
    await a.create_app(app_name)
    await a.set_items(app_name, {"k": "v1"})
    assert (await a.publish(app_name))[0] == 201
    sockets = [await r.watch(app_name) for r in replicas]
    for ws in sockets:
        assert await last_version(ws, 1) == 1
    names = cluster.etcd.member_names
    for name in names:
        cluster.etcd.kill_member(name)
    try:
        config = f"/api/v1/apps/{app_name}/envs/prod/config"
        for replica in replicas:
            status, body = await replica.call("GET", config)
            assert (status, body["version"], body["items"]) == (200, 1, {"k": "v1"})
            status, body = await replica.call("GET", config + "?after=0&wait=5")
            assert (status, body["version"]) == (200, 1)
            status, _ = await replica.call("GET", config + "?after=1&wait=1")
            assert status == 304
            fresh = await replica.watch(app_name)
            assert await last_version(fresh, 1) == 1
            await fresh.close()
        assert not any(ws.closed for ws in sockets)
        await b.set_items(app_name, {"k": "v2"})
        audit_before = await a.call("GET", f"/api/v1/audit?app={app_name}")
        status, body = await b.publish(app_name)
        assert (status, body["error"]["code"]) == (503, "coordinator_unavailable"), body
        assert await a.store_versions(app_name) == [1]
        assert await a.call("GET", f"/api/v1/audit?app={app_name}") == audit_before
        status, body = await c.call("GET", "/readyz")
        assert status == 503
        assert body["checks"]["store"] == "ok"
        assert body["checks"]["coordinator"] != "ok"
    finally:
        await asyncio.to_thread(_start_all, cluster)
    # Back without restarting any replica: publishes go through and reach everyone.
    status, body = await until(
        lambda: _published(b, app_name), within=30, what="a publish after etcd returned"
    )
    assert body["version"] == 2
    for ws in sockets:
        assert await last_version(ws, 2) == 2
        await ws.close()
    for replica in replicas:
        await until(functools.partial(_ready, replica), what="readyz after etcd returned")


async def _serves_version(replica: Replica, app_name: str, version: int) -> bool:
    return await replica.config_version(app_name) == version


async def test_7_a_deleted_release_key_is_restored_by_the_refresh(
    replicas: list[Replica], app_name: str, raw_etcd: aetcd.Client
) -> None:
    a = replicas[0]
    await a.create_app(app_name)
    for value in ("v1", "v2"):
        await a.set_items(app_name, {"k": value})
        assert (await a.publish(app_name))[0] == 201
    key = KEYS.release(app_name, "prod")
    repairs_before = await _total_repairs(a)
    assert await raw_etcd.delete(key) is not None
    record = await until(lambda: raw_etcd.get(key), within=15, what="the record restored")
    restored = decode_release(record.value).release
    assert (restored.version, restored.items) == (2, {"k": "v2"})
    await until(lambda: _more_repairs(a, repairs_before), what="the repair counted")
    # Each replica takes the restored record from its own watch, a moment after the repair.
    for replica in replicas:
        await until(
            functools.partial(_serves_version, replica, app_name, 2),
            what=f"{replica.server.url} serving version 2 again",
        )


async def test_8_revoking_a_token_on_a_closes_its_socket_on_c(
    replicas: list[Replica], app_name: str
) -> None:
    a, b, c = replicas
    await a.create_app(app_name)
    await a.set_items(app_name, {"k": "v1"})
    assert (await a.publish(app_name))[0] == 201
    tokens = []
    for name in ("doomed", "kept"):
        status, body = await a.call(
            "POST", "/api/v1/tokens", {"name": name, "scopes": [f"read:{app_name}"]}
        )
        assert status == 201, body
        tokens.append((body["id"], body["token"]))
    (doomed_id, doomed), (_, kept) = tokens
    doomed_ws = await c.watch(app_name, token=doomed)
    kept_ws = await c.watch(app_name, token=kept)
    for ws in (doomed_ws, kept_ws):
        assert await last_version(ws, 1) == 1
    status, _ = await a.call("DELETE", f"/api/v1/tokens/{doomed_id}")
    assert status == 204
    closing = await close_frame(doomed_ws, 10)
    # The close frame's code (the client's own close_code can end up 1006 when the server
    # drops the connection while the client is still answering the close).
    assert (closing.type, closing.data) == (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSCloseCode.POLICY_VIOLATION,
    ), closing
    config = f"/api/v1/apps/{app_name}/envs/prod/config"
    for replica in replicas:
        # C has acted on the event; the others may see it a moment later.
        await until(
            functools.partial(_refused, replica, config, doomed),
            what=f"{replica.url} refuses the revoked token",
        )
        assert (await replica.call("GET", config, token=kept))[0] == 200
    await b.set_items(app_name, {"k": "v2"})
    assert (await b.publish(app_name))[0] == 201
    assert await last_version(kept_ws, 2) == 2
    await kept_ws.close()


async def test_9_deleting_an_env_on_a_reaches_subscribers_and_long_polls_on_b_and_c(
    replicas: list[Replica], app_name: str, raw_etcd: aetcd.Client
) -> None:
    a, b, c = replicas
    await a.create_app(app_name)
    status, body = await a.call("POST", f"/api/v1/apps/{app_name}/envs", {"name": "dev"})
    assert status == 201, body
    for env in ("prod", "dev"):
        await a.set_items(app_name, {"k": env}, env=env)
        assert (await a.publish(app_name, env=env))[0] == 201
    ws_b = await b.watch(app_name, env="dev")
    assert await last_version(ws_b, 1) == 1
    poll = asyncio.create_task(
        c.call("GET", f"/api/v1/apps/{app_name}/envs/dev/config?after=1&wait=30")
    )
    await until(lambda: _has_version(c, app_name, 1, "dev"), what="C serving dev")

    status, _ = await a.call("DELETE", f"/api/v1/apps/{app_name}/envs/dev")
    assert status == 204

    message = (await ws_b.receive(timeout=10)).json()
    assert (message["type"], message["code"]) == ("error", "env_deleted")
    poll_status, poll_body = await asyncio.wait_for(poll, 10)
    assert (poll_status, poll_body["error"]["code"]) == (404, "not_found")
    for replica in replicas:
        await until(
            functools.partial(_has_version, replica, app_name, 0, "dev"),
            what=f"{replica.url} forgetting dev",
        )
        assert await replica.config_version(app_name) == 1  # prod stays
    assert await raw_etcd.get(KEYS.release(app_name, "dev")) is None
    # Created again on B and published on C: above the deleted env's version, everywhere.
    status, _ = await b.call("POST", f"/api/v1/apps/{app_name}/envs", {"name": "dev"})
    assert status == 201
    await c.set_items(app_name, {"k": "again"}, env="dev")
    status, release = await c.publish(app_name, env="dev")
    assert (status, release["version"]) == (201, 2)
    for replica in replicas:
        await until(
            functools.partial(_has_version, replica, app_name, 2, "dev"),
            what=f"{replica.url} serving the new dev",
        )
    await ws_b.close()


# helpers


async def _not(value: Any) -> bool:
    return not await value


async def _has_version(replica: Replica, app: str, version: int, env: str = "prod") -> bool:
    return await replica.config_version(app, env) == version


# What a publish may answer while etcd comes back: each says "retry".
RETRYABLE = {(503, "coordinator_unavailable"), (409, "lock_lost"), (503, "lock_timeout")}


async def _published(replica: Replica, app: str) -> tuple[int, Any] | None:
    status, body = await replica.publish(app)
    if status == 201:
        return status, body
    assert (status, body["error"]["code"]) in RETRYABLE, body
    return None


async def _refused(replica: Replica, path: str, token: str) -> bool:
    status, _ = await replica.call("GET", path, token=token)
    return status == 401


async def _ready(replica: Replica) -> bool:
    status, _ = await replica.call("GET", "/readyz")
    return status == 200


async def _total_repairs(replica: Replica) -> int:
    view = await replica.cluster_view()
    return sum(int(r.get("repairs", 0)) for r in view["replicas"])


async def _more_repairs(replica: Replica, before: int) -> bool:
    return await _total_repairs(replica) > before


def _start_all(cluster: Cluster) -> None:
    for name in cluster.etcd.member_names:
        cluster.etcd.start_member(name, wait=False)
    deadline = time.monotonic() + 30
    while not cluster.etcd.is_healthy():
        if time.monotonic() > deadline:
            raise RuntimeError("etcd did not come back healthy")
        time.sleep(0.1)


async def test_replicas_on_one_host_share_a_port_with_reuse_port(cluster: Cluster) -> None:
    # Two more replicas listen on one port (server.reuse_port): both start, and the kernel
    # spreads new connections over them.
    port = free_port()
    shared = [
        ServerProcess(
            cluster.base_dir / f"shared{n}",
            cluster.store_url,
            etcd_endpoints=cluster.etcd.client_endpoints,
            port=port,
            env=cluster.env({"CONFIGCENTER_SERVER_REUSE_PORT": "true"}),
        )
        for n in (1, 2)
    ]
    for server in shared:
        cluster.extras.append(server)
        await asyncio.to_thread(server.start)
    token = await asyncio.to_thread(cluster.replicas[0].admin_token)
    headers = {"Authorization": f"Bearer {token}"}
    answered_by: set[str] = set()
    url = f"http://127.0.0.1:{port}/api/v1/cluster"
    for _ in range(200):  # a new connection each: the kernel picks the listener
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as got:
            assert got.status == 200
            answered_by.add((await got.json())["replica"])
        if len(answered_by) == 2:
            break
    assert len(answered_by) == 2, answered_by
