"""The coordinator seam: lock, distribution and events, in process and on a real etcd."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

import aetcd
import pytest

from devservices import EtcdCluster
from server.coord.etcd_keys import decode_release, encode_release
from server.errors import AppError
from server.events import AppDeleted, ClusterEvent, EnvDeleted, TokenRevoked, UserChanged
from server.records import Fence
from tests.coord.helpers import (
    LOCK_TTL,
    Node,
    NodeFactory,
    StoreReleases,
    dead_endpoint,
    make_release,
)

# One event of every type (test_events checks that none is missing).
EVENT_SAMPLES: tuple[ClusterEvent, ...] = (
    TokenRevoked(7),
    UserChanged("ann"),
    AppDeleted("gone"),
    EnvDeleted("shop", "gone"),
)
KINDS = [pytest.param("local", id="local"), pytest.param("etcd", id="etcd", marks=pytest.mark.etcd)]


async def until(
    condition: Callable[[], object], within: float = 10.0, what: str = "condition"
) -> None:
    """Poll a zero-argument callable until it is true (bounded)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within} s")
        await asyncio.sleep(0.02)


async def pair(node_factory: NodeFactory, kind: str) -> tuple[Node, Node]:
    """Two replicas; in process there is only one."""
    first = await node_factory(kind)
    second = await node_factory(kind) if kind == "etcd" else first
    return first, second


@pytest.mark.parametrize("kind", KINDS)
async def test_lock_is_exclusive_and_fences_grow(node_factory: NodeFactory, kind: str) -> None:
    a, b = await pair(node_factory, kind)
    inside = 0
    fences: list[Fence] = []

    async def publish(node: Node) -> None:
        nonlocal inside
        async with node.coordinator.publish_lock("shop", "prod") as fence:
            inside += 1
            assert inside == 1, "two holders at once"
            fences.append(fence)
            await asyncio.sleep(0.01)  # the behaviour under test: hold the lock a while
            inside -= 1

    await asyncio.gather(*(publish(a if n % 2 else b) for n in range(12)))
    assert len(fences) == 12
    assert len({f.epoch for f in fences}) == 1
    if kind == "etcd":
        tokens = [f.token for f in fences]
        assert tokens == sorted(tokens)
        assert len(set(tokens)) == 12
        assert fences[0].epoch.startswith("etcd-")


@pytest.mark.parametrize("kind", KINDS)
async def test_distribute_reaches_every_replica(
    node_factory: NodeFactory, store: StoreReleases, kind: str
) -> None:
    a, b = await pair(node_factory, kind)
    for version in (1, 2, 3):
        async with a.coordinator.publish_lock("shop", "prod") as fence:
            release = await store.commit(make_release("shop", "prod", version))
            await a.coordinator.distribute(release, fence)
        assert a.published.version("shop", "prod") == version
        await until(functools.partial(_at_version, b, version))
    got = b.published.get("shop", "prod")
    assert got is not None
    assert got.items == {"v": "3"}


@pytest.mark.parametrize("kind", KINDS)
async def test_events_reach_every_replica_once(node_factory: NodeFactory, kind: str) -> None:
    a, b = await pair(node_factory, kind)
    for sent, event in enumerate(EVENT_SAMPLES, start=1):
        await a.coordinator.announce(event)
        await until(functools.partial(_has_events, b, sent), what=f"{event!r} elsewhere")
    # A's watch delivers in etcd order: once B's later event is in, an echo of A's own
    # would have arrived before it. The announcer must not get its own events a second time.
    await b.coordinator.announce(TokenRevoked(8))
    await until(lambda: TokenRevoked(8) in a.events, what="B's event at A")
    assert a.events == [*EVENT_SAMPLES, TokenRevoked(8)]
    assert b.events == a.events


@pytest.mark.etcd
async def test_lock_is_kept_alive_while_held(node_factory: NodeFactory) -> None:
    a = await node_factory("etcd")
    b = await node_factory("etcd")
    order: list[str] = []
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with a.coordinator.publish_lock("shop", "prod"):
            order.append("a")
            held.set()
            await release.wait()
            order.append("a-done")

    async def waiter() -> None:
        await held.wait()
        async with b.coordinator.publish_lock("shop", "prod"):
            order.append("b")

    tasks = [asyncio.create_task(holder()), asyncio.create_task(waiter())]
    await held.wait()
    deadline = time.monotonic() + 20
    while not ((holders := await b.etcd.locks.holders()) and holders[0]["waiting"]):
        if time.monotonic() > deadline:
            pytest.fail("B's wait for the lock not seen within 20 s")
        await asyncio.sleep(0.02)
    assert [(h["app"], h["env"], h["replica"], h["waiting"]) for h in holders] == [
        ("shop", "prod", a.etcd.replica_id, 1)
    ]
    await asyncio.sleep(LOCK_TTL * 2.5)  # well past the TTL: only the keep-alive holds it
    assert order == ["a"]
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert order == ["a", "a-done", "b"]


@pytest.mark.etcd
async def test_distribute_deletes_the_claim_with_the_record(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    b = await node_factory("etcd")
    async with a.coordinator.publish_lock("shop", "prod") as fence:
        hold = a.etcd.locks.held("shop", "prod")
        assert hold is not None
        release = await store.commit(make_release("shop", "prod", 1))
        await a.coordinator.distribute(release, fence)
        # One transaction wrote the record and released the lock: the claim is gone before
        # the block ends, and another replica's publish may go ahead.
        assert await raw_etcd.get(hold.key) is None
        record = await raw_etcd.get(a.etcd.keys.release("shop", "prod"))
        assert record is not None
        assert record.mod_revision > hold.token
        await asyncio.wait_for(_hold_once(b, "shop", "prod"), 10)
    assert a.etcd.fenced_out == 0
    assert list(await raw_etcd.get_prefix(a.etcd.keys.lock_dir("shop", "prod"))) == []


async def _hold_once(node: Node, app: str, env: str) -> None:
    async with node.coordinator.publish_lock(app, env):
        pass


@pytest.mark.etcd
async def test_a_holder_whose_lease_expired_cannot_write_etcd(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    b = await node_factory("etcd")
    async with a.coordinator.publish_lock("shop", "prod") as stale:
        hold = a.etcd.locks.held("shop", "prod")
        assert hold is not None
        # What a long pause looks like from etcd's side: the lease is gone.
        await raw_etcd.revoke_lease(hold.lease_id)
        async with b.coordinator.publish_lock("shop", "prod") as fresh:
            assert fresh.epoch == stale.epoch
            assert fresh.token > stale.token
            newer = await store.commit(make_release("shop", "prod", 2))
            await b.coordinator.distribute(newer, fresh)
        older = make_release("shop", "prod", 1)
        await a.coordinator.distribute(older, stale)
    assert a.etcd.fenced_out == 1
    record = await raw_etcd.get(a.etcd.keys.release("shop", "prod"))
    assert record is not None
    assert decode_release(record.value).version == 2
    await until(lambda: a.published.version("shop", "prod") == 2)


@pytest.mark.etcd
async def test_watch_reloads_after_compaction(
    node_factory: NodeFactory, raw_etcd: aetcd.Client, caplog: pytest.LogCaptureFixture
) -> None:
    a = await node_factory("etcd")
    watch = a.etcd.tasks.task("etcd-watch")
    watch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watch
    behind = a.etcd.sync.last_revision
    key = a.etcd.keys.release("late", "prod")
    for version in (1, 2, 3):
        put = await raw_etcd.put(key, encode_release(make_release("late", "prod", version)))
    await raw_etcd.compact(put.header.revision)
    assert a.published.version("late", "prod") == 0
    caplog.set_level(logging.INFO, logger="server.coord.etcd_sync")
    a.etcd.tasks.spawn("etcd-watch", a.etcd.sync.run_watch())
    await until(lambda: a.published.version("late", "prod") == 3)
    assert any("compacted" in r.getMessage() for r in caplog.records)
    assert a.etcd.sync.last_revision > behind
    # and the new watch follows on
    await raw_etcd.put(key, encode_release(make_release("late", "prod", 4)))
    await until(lambda: a.published.version("late", "prod") == 4)


@pytest.mark.etcd
async def test_refresh_repairs_etcd_from_the_store(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    b = await node_factory("etcd")
    key = a.etcd.keys.release("shop", "prod")
    # Committed to the store, never written to etcd (the publisher died in between).
    await store.commit(make_release("shop", "prod", 5))
    await a.etcd.refresh_once()
    got = await raw_etcd.get(key)
    assert got is not None
    assert decode_release(got.value).version == 5
    assert a.etcd.sync.repairs["etcd_missing"] == 1
    await until(lambda: b.published.version("shop", "prod") == 5)

    # Deleted behind everyone's back: restored.
    await raw_etcd.delete(key)
    await b.etcd.refresh_once()
    got = await raw_etcd.get(key)
    assert got is not None
    assert decode_release(got.value).version == 5

    # An older record is brought up to the store's version; nothing goes backwards.
    await raw_etcd.put(key, encode_release(make_release("shop", "prod", 4)))
    await a.etcd.refresh_once()
    got = await raw_etcd.get(key)
    assert got is not None
    assert decode_release(got.value).version == 5
    assert a.etcd.sync.repairs["etcd_behind_store"] == 1

    # While a publish of the env is in flight, its holder writes etcd: no repair.
    await store.commit(make_release("shop", "prod", 6))
    async with b.coordinator.publish_lock("shop", "prod"):
        await a.etcd.refresh_once()
        got = await raw_etcd.get(key)
        assert got is not None
        assert decode_release(got.value).version == 5
    await a.etcd.refresh_once()
    got = await raw_etcd.get(key)
    assert got is not None
    assert decode_release(got.value).version == 6

    # A record of an app the store no longer has is removed.
    stale = a.etcd.keys.release("gone", "prod")
    await raw_etcd.put(stale, encode_release(make_release("gone", "prod", 1)))
    await a.etcd.refresh_once()
    assert await raw_etcd.get(stale) is None
    assert a.etcd.sync.repairs["etcd_stale"] == 1


@pytest.mark.etcd
async def test_refresh_delivers_what_a_stalled_watch_missed(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    watch = a.etcd.tasks.task("etcd-watch")
    watch.cancel()  # from here on nothing arrives, as with a silently stalled stream
    with pytest.raises(asyncio.CancelledError):
        await watch
    release = await store.commit(make_release("quiet", "prod", 3))
    await raw_etcd.put(a.etcd.keys.release("quiet", "prod"), encode_release(release))
    a.etcd.sync.watching = True  # the stalled stream still looks established
    await a.etcd.refresh_once()  # first sight of the record: it may still be on its way
    assert a.published.version("quiet", "prod") == 0
    await a.etcd.refresh_once()
    assert a.published.version("quiet", "prod") == 3
    assert a.etcd.sync.repairs["cache_missed"] == 1


@pytest.mark.etcd
async def test_app_deleted_removes_its_records(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    b = await node_factory("etcd")
    for env in ("prod", "dev"):
        async with a.coordinator.publish_lock("shop", env) as fence:
            await a.coordinator.distribute(await store.commit(make_release("shop", env, 1)), fence)
    async with a.coordinator.publish_lock("shopx", "prod") as fence:
        await a.coordinator.distribute(await store.commit(make_release("shopx", "prod", 1)), fence)
    await store.drop_app("shop")
    await a.coordinator.announce(AppDeleted("shop"))
    await until(lambda: AppDeleted("shop") in b.events)
    left = await raw_etcd.get_prefix(a.etcd.keys.releases)
    assert [kv.key for kv in left] == [a.etcd.keys.release("shopx", "prod")]


@pytest.mark.etcd
async def test_env_deleted_removes_its_record_and_every_replica_forgets_it(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    b = await node_factory("etcd")
    for env in ("prod", "dev"):
        async with a.coordinator.publish_lock("shop", env) as fence:
            await a.coordinator.distribute(await store.commit(make_release("shop", env, 1)), fence)
    await until(lambda: b.published.version("shop", "dev") == 1)
    await a.coordinator.announce(EnvDeleted("shop", "dev"))
    await until(lambda: EnvDeleted("shop", "dev") in b.events)
    left = await raw_etcd.get_prefix(a.etcd.keys.releases)
    assert [kv.key for kv in left] == [a.etcd.keys.release("shop", "prod")]


@pytest.mark.etcd
async def test_unreachable_etcd_fails_fast(node_factory: NodeFactory) -> None:
    started = time.monotonic()
    a = await node_factory("etcd", endpoints=[dead_endpoint(), dead_endpoint()])
    assert time.monotonic() - started < 15
    with pytest.raises(AppError) as refused:
        async with a.coordinator.publish_lock("shop", "prod"):
            pytest.fail("acquired a lock without etcd")
    assert (refused.value.code, refused.value.status) == ("coordinator_unavailable", 503)
    with pytest.raises(AppError) as unready:
        await a.coordinator.check()
    assert unready.value.code == "coordinator_unavailable"
    view = await a.coordinator.describe()
    assert "etcd_error" in view
    # Events are acted on locally and kept for later.
    await a.coordinator.announce(TokenRevoked(1))
    assert a.events == [TokenRevoked(1)]
    assert view["replicas"][0]["id"] == a.etcd.replica_id


@pytest.mark.etcd
async def test_a_dead_endpoint_in_the_list_is_skipped(
    node_factory: NodeFactory, store: StoreReleases, etcd_module: EtcdCluster
) -> None:
    live = etcd_module.client_endpoints
    a = await node_factory("etcd", endpoints=[dead_endpoint(), *live, dead_endpoint()])
    b = await node_factory("etcd")
    for _ in range(3):  # wherever the list starts, calls land on the live member
        async with a.coordinator.publish_lock("shop", "prod") as fence:
            version = a.published.version("shop", "prod") + 1
            await a.coordinator.distribute(
                await store.commit(make_release("shop", "prod", version)), fence
            )
    await until(lambda: b.published.version("shop", "prod") == 3)
    await a.coordinator.check()
    view = await b.coordinator.describe()
    assert {r["id"] for r in view["replicas"]} >= {a.etcd.replica_id, b.etcd.replica_id}
    assert [m["healthy"] for m in view["etcd_members"]] == [True]


def _has_events(node: Node, count: int) -> bool:
    return len(node.events) == count


def _at_version(node: Node, version: int) -> bool:
    return node.published.version("shop", "prod") == version
