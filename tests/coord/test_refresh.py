"""The scheduled refresh on a real etcd, one test per step that repairs something.

Steps covered elsewhere: etcd repaired where its record is missing, older or stale, and
never while a publish holds the lock (`test_refresh_repairs_etcd_from_the_store`); a record
a stalled watch missed (`test_refresh_delivers_what_a_stalled_watch_missed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import aetcd
import pytest

from devservices import EtcdCluster
from server.coord.etcd_keys import decode_release, encode_release
from server.records import Gray, GrayRule, GrayStatus
from tests.coord.helpers import Node, NodeFactory, StoreReleases, make_release

pytestmark = pytest.mark.etcd


async def refresh_until(
    node: Node, condition: Callable[[], object], within: float = 15.0, what: str = "state"
) -> None:
    """Run the node's refresh until condition holds (bounded); a refresh may find etcd away."""
    deadline = time.monotonic() + within
    while True:
        await node.etcd.refresh_once()
        if condition():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within} s")
        await asyncio.sleep(0.1)


async def eventually(
    condition: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "state"
) -> None:
    """Poll an async condition until it is true (bounded)."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within} s")
        await asyncio.sleep(0.05)


async def stop_watch(node: Node) -> None:
    """End the node's watch task for good, as when etcd's stream cannot be re-created."""
    watch = node.etcd.tasks.task("etcd-watch")
    watch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watch
    assert not node.etcd.sync.watching


async def publish(
    node: Node, store: StoreReleases, version: int, app: str = "shop", env: str = "prod"
) -> None:
    """Commit a release and distribute it, as a publish on node does."""
    async with node.coordinator.publish_lock(app, env) as fence:
        await node.coordinator.distribute(
            await store.commit(make_release(app, env, version)), fence
        )


async def test_catch_up_from_store_while_the_watch_is_down(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    await stop_watch(a)
    # Another replica committed and distributed version 2; this one heard nothing.
    release = await store.commit(make_release("shop", "prod", 2))
    await raw_etcd.put(a.etcd.keys.release("shop", "prod"), encode_release(release))
    assert a.published.version("shop", "prod") == 0
    assert await a.etcd.sync.refresh() == 1
    assert a.published.version("shop", "prod") == 2
    assert a.etcd.sync.repairs["cache_behind_store"] == 1
    assert await a.etcd.sync.refresh() == 0  # nothing left to repair


@pytest.fixture
def other_etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A second one-member etcd: another cluster id, its own revisions."""
    with EtcdCluster(1, tmp_path / "other-etcd") as cluster:
        yield cluster


async def test_a_replaced_etcd_is_reloaded_and_written_back(
    etcd_single: EtcdCluster,
    other_etcd: EtcdCluster,
    node_factory: NodeFactory,
    store: StoreReleases,
) -> None:
    # The node starts on either cluster; when that one is gone it lands on the other, as on
    # an etcd rebuilt from nothing (the clusters outlive the node: they are set up first).
    clusters = {c.client_endpoints[0]: c for c in (etcd_single, other_etcd)}
    a = await node_factory("etcd", endpoints=list(clusters))
    await publish(a, store, 1)
    await a.etcd.refresh_once()
    assert sum(a.etcd.sync.repairs.values()) == 0
    first_cluster = a.etcd.sync.cluster_id
    old = a.etcd.conn.endpoint
    (new,) = (endpoint for endpoint in clusters if endpoint != old)
    clusters[old].stop()
    await refresh_until(a, lambda: a.etcd.sync.repairs["etcd_missing"] == 1, what="write-back")
    assert a.etcd.conn.endpoint == new
    assert a.etcd.sync.cluster_id not in (None, first_cluster)
    host, port = new.rsplit(":", 1)
    async with aetcd.Client(host, int(port)) as client:
        key = a.etcd.keys.release("shop", "prod")
        got = await client.get(key)
        assert got is not None
        assert decode_release(got.value).version == 1
        # The watch follows the new cluster from its own revisions.
        await client.put(key, encode_release(await store.commit(make_release("shop", "prod", 2))))

        async def delivered() -> bool:
            return a.published.version("shop", "prod") == 2

        await eventually(delivered, what="release 2 through the new watch")


async def test_a_record_ahead_of_the_store_is_passed_by_the_stores_release(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    await publish(a, store, 1)
    # etcd has a version the store never committed (the store was restored from a backup).
    key = a.etcd.keys.release("shop", "prod")
    await raw_etcd.put(key, encode_release(make_release("shop", "prod", 7)))

    async def in_etcd() -> int:
        got = await raw_etcd.get(key)
        assert got is not None
        return decode_release(got.value).version

    # This source commits to the store only; the refresh after writes the release to etcd.
    await refresh_until(a, lambda: a.published.version("shop", "prod") == 8, what="version 8")
    assert await in_etcd() == 8
    assert a.published.get("shop", "prod") == await store.latest_release("shop", "prod")
    assert a.etcd.sync.repairs["store_behind_etcd"] == 1
    assert await a.etcd.sync.refresh() == 0


async def test_an_app_deleted_while_its_event_was_missed_leaves_the_cache(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    await publish(a, store, 1)
    await publish(a, store, 1, app="kept")
    assert a.published.version("shop", "prod") == 1
    # Deleted in the store by a replica that died before announcing it.
    await store.drop_app("shop")
    await a.etcd.refresh_once()
    assert a.published.get("shop", "prod") is None
    assert a.published.version("kept", "prod") == 1
    assert a.etcd.sync.repairs["cache_stale"] == 1
    assert a.etcd.sync.repairs["etcd_stale"] == 1
    assert await raw_etcd.get(a.etcd.keys.release("shop", "prod")) is None


async def test_an_env_deleted_while_its_event_was_missed_leaves_the_cache(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    a = await node_factory("etcd")
    await publish(a, store, 1)
    await publish(a, store, 1, env="dev")
    # Deleted in the store by a replica that died before announcing it.
    await store.drop_env("shop", "dev")
    await a.etcd.refresh_once()
    assert a.published.get("shop", "dev") is None
    assert a.published.version("shop", "prod") == 1
    assert a.etcd.sync.repairs["cache_stale"] == 1
    assert a.etcd.sync.repairs["etcd_stale"] == 1
    assert await raw_etcd.get(a.etcd.keys.release("shop", "dev")) is None


async def test_a_refresh_while_the_store_is_down_is_one_warning_and_the_next_one_works(
    node_factory: NodeFactory, store: StoreReleases, caplog: pytest.LogCaptureFixture
) -> None:
    a = await node_factory("etcd")
    await store.store.close()
    try:
        with caplog.at_level(logging.INFO, logger="server"):
            await a.etcd.refresh_once()
    finally:
        await store.store.open()
    skipped = [r for r in caplog.records if "refresh skipped" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in skipped] == [(logging.WARNING, None)]
    await store.commit(make_release("shop", "prod", 1))
    await a.etcd.refresh_once()
    assert a.published.version("shop", "prod") == 1


async def test_a_widen_and_a_promote_the_store_has_and_etcd_lacks_are_repaired(
    node_factory: NodeFactory, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    """A gray release's state moves without its version (widen, promote): the refresh
    compares (version, gray step), so a replica that committed the change and died before
    writing etcd is repaired like a missing release."""
    a = await node_factory("etcd")
    await publish(a, store, 1)
    main = make_release("shop", "prod", 1)
    rule = GrayRule(labels={}, instances=frozenset(), percent=10)
    gray = Gray(rule, GrayStatus.ACTIVE, 1, 1)
    async with a.coordinator.publish_lock("shop", "prod") as fence:
        committed = await store.commit(
            replace(make_release("shop", "prod", 2, v="gray"), gray=gray)
        )
        await a.coordinator.distribute(replace(committed, gray=replace(gray, main=main)), fence)
    key = a.etcd.keys.release("shop", "prod")

    async def etcd_stamp() -> tuple[int, int]:
        got = await raw_etcd.get(key)
        assert got is not None
        return decode_release(got.value).release.stamp

    async def delivered_gray() -> bool:
        return a.published.stamp("shop", "prod") == (2, 1)

    await eventually(delivered_gray, what="the gray release")
    assert await etcd_stamp() == (2, 1)
    assert await a.etcd.sync.refresh() == 0

    async def store_only(changed: Gray) -> None:
        async with store.store.transaction() as q:
            ref = await q.env("shop", "prod")
            assert ref is not None
            await q.set_gray(ref.id, 2, changed)

    widened = Gray(replace(rule, percent=50), GrayStatus.ACTIVE, 2, 1)
    await store_only(widened)
    assert await a.etcd.sync.refresh() == 1
    assert a.etcd.sync.repairs["etcd_behind_store"] == 1
    assert await etcd_stamp() == (2, 2)
    assert a.published.stamp("shop", "prod") == (2, 2)
    held = a.published.gray("shop", "prod")
    assert held is not None
    assert held.gray is not None
    assert held.gray.rule.percent == 50
    assert a.published.version("shop", "prod") == 2

    await store_only(Gray(widened.rule, GrayStatus.PROMOTED, 3, 1))
    assert await a.etcd.sync.refresh() == 1
    assert await etcd_stamp() == (2, 3)
    assert a.published.gray("shop", "prod") is None
    promoted = a.published.get("shop", "prod")
    assert promoted is not None
    assert promoted.version == 2
    assert promoted.items == {"v": "gray"}
    assert await a.etcd.sync.refresh() == 0  # nothing left


async def test_a_refresh_reads_the_values_of_changed_records_only(
    node_factory: NodeFactory,
    store: StoreReleases,
    raw_etcd: aetcd.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = await node_factory("etcd")
    sync = a.etcd.sync
    fetched: list[set[bytes]] = []
    fetch = sync._fetch_records

    async def recording(changed: dict[bytes, int]) -> list[object]:
        fetched.append(set(changed))
        return await fetch(changed)

    monkeypatch.setattr(sync, "_fetch_records", recording)
    # More envs than are fetched one by one: the first refresh reads the prefix's values.
    envs = [f"e{i:03d}" for i in range(70)]
    for env in envs:
        await publish(a, store, 1, env=env)
    assert await sync.refresh() == 0
    assert fetched[-1] == {a.etcd.keys.release("shop", env) for env in envs}
    # Nothing written since: revisions only, no record's value.
    assert await sync.refresh() == 0
    assert fetched[-1] == set()
    # One publish: that record's value, and the refresh still sees every record.
    await publish(a, store, 2, env="e007")
    assert await sync.refresh() == 0
    assert fetched[-1] == {a.etcd.keys.release("shop", "e007")}
    # A record etcd lost is still repaired from the store (its stamp was remembered).
    await raw_etcd.delete(a.etcd.keys.release("shop", "e008"))
    assert await sync.refresh() == 1
    assert sync.repairs["etcd_missing"] == 1
