"""ConfigClient across server restarts, outages and failover, with real server processes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from devservices import EtcdCluster, ServerProcess
from server.client import Change, ConfigClient
from tests.client.helpers import CLUSTER_ENV, FAST, Admin, sqlite_url, wait_until
from tests.types import ServerProcessFactory


async def test_a_restart_loses_no_release_published_during_the_gap(
    server_process: ServerProcessFactory, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    server = server_process(sqlite_url(db))
    admin = Admin(server)
    app = admin.new_app()
    admin.publish(app, {"a": "1", "b": "1"})
    token = admin.token(f"read:{app}")[1]
    client = ConfigClient(server.url, token, app, "prod", tmp_path / "cache", **FAST)
    seen: list[Change] = []
    client.on_change(seen.append)
    async with client:
        await wait_until(lambda: client.connected, "the subscription")
        # Process control runs on a thread so the client keeps retrying meanwhile.
        await asyncio.to_thread(server.stop)
        await wait_until(lambda: not client.connected, "the client to notice the stop")

        def publish_in_the_gap() -> None:
            # Another server on the same store (never two at once) publishes twice while the
            # client's server is down: the client learns of them only by resubscribing.
            gap = server_process(sqlite_url(db))
            Admin(gap).publish(app, {"a": "2"})
            Admin(gap).publish(app, {"c": "3"}, ["b"])
            gap.stop()

        await asyncio.to_thread(publish_in_the_gap)
        assert client.version == 1
        assert client.last_error is not None  # it kept trying the stopped server
        await asyncio.to_thread(server.start)
        await wait_until(lambda: client.version == 3, "the releases published in the gap")
        assert dict(client.items) == {"a": "2", "c": "3"}
        await wait_until(lambda: client.connected, "the resubscription")
        assert await admin.apublish(app, {"d": "4"}) == 4
        await wait_until(lambda: client.version == 4, "the push after the restart")
    versions = [c.version for c in seen]
    assert versions == sorted(set(versions))
    assert versions[0] == 1
    assert versions[-1] == 4
    # Whatever was coalesced, the changes add up: every key's history is accounted for.
    assert {k for c in seen for k in c.added} == {"a", "b", "c", "d"}
    assert {k for c in seen for k in c.removed} == {"b"}


async def test_server_down_at_start_serves_the_cache_then_the_live_release(
    server_process: ServerProcessFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir = tmp_path / "cache"
    server = server_process(sqlite_url(tmp_path / "store.db"))
    admin = Admin(server)
    app = admin.new_app()
    admin.publish(app, {"a": "cached"})
    token = admin.token(f"read:{app}")[1]
    async with ConfigClient(server.url, token, app, "prod", cache_dir, **FAST) as first:
        assert first.version == 1
    admin.publish(app, {"a": "live"})  # the cache file still holds version 1
    server.stop()

    client = ConfigClient(server.url, token, app, "prod", cache_dir, **FAST)
    seen: list[Change] = []
    client.on_change(seen.append)
    async with client:
        assert (client.version, client.get("a"), client.from_cache) == (1, "cached", True)
        assert not client.connected
        assert [(c.version, c.from_cache) for c in seen] == [(1, True)]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("serving cached version 1" in m for m in warnings), warnings
        await asyncio.to_thread(server.start)
        # Callbacks run on the client's own task, after the release is applied: wait for both.
        await wait_until(
            lambda: client.version == 2 and not client.from_cache and len(seen) == 2,
            "the live release and its change callback",
        )
        assert client.get("a") == "live"
        assert [(c.version, c.from_cache) for c in seen] == [(1, True), (2, False)]
        assert seen[1].changed == {"a": ("cached", "live")}
        await wait_until(lambda: client.connected, "the subscription")


async def test_failover_between_two_cluster_replicas(
    mysql_url: str, etcd_single: EtcdCluster, server_process: ServerProcessFactory
) -> None:
    # Two replicas of one cluster (one MariaDB, one etcd): the token and every release exist
    # once, in the shared store, whichever replica made them. The store and etcd fixtures come
    # first in the signature so the replicas are stopped before them.
    def replica() -> ServerProcess:
        return server_process(
            mysql_url, etcd_endpoints=etcd_single.client_endpoints, env=CLUSTER_ENV
        )

    first = replica()  # alone: it creates the schema and the admin
    second = replica()
    app = Admin(first).new_app()
    Admin(first).publish(app, {"v": "1"})
    token = Admin(first).token(f"read:{app}")[1]

    client = ConfigClient([first.url, second.url], token, app, "prod", **FAST)
    seen: list[Change] = []
    client.on_change(seen.append)
    async with client:
        await wait_until(lambda: client.connected, "the subscription")
        assert (client.url, client.version) == (first.url, 1)
        assert await Admin(first).apublish(app, {"v": "2"}) == 2
        await wait_until(lambda: client.version == 2, "version 2 pushed by the first replica")
        await asyncio.to_thread(first.kill)
        assert await Admin(second).apublish(app, {"v": "3"}) == 3
        await wait_until(lambda: client.version == 3, "version 3 from the second replica")
        assert (client.url, client.get("v"), client.from_cache) == (second.url, "3", False)
        await wait_until(lambda: client.connected, "the subscription to the second replica")
        assert await Admin(second).apublish(app, {"v": "4"}) == 4
        await wait_until(lambda: client.version == 4, "a push from the second replica")
        await wait_until(lambda: len(seen) == 4, "the on_change callbacks")
    assert [(c.version, c.previous_version) for c in seen] == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert [c.items["v"] for c in seen] == ["1", "2", "3", "4"]
