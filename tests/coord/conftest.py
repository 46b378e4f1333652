"""Coordinators on a real etcd (one member per module) or in process, and a release source."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aetcd
import pytest

from devservices import EtcdCluster, free_port
from server.config import EtcdSection, LimitsSection
from server.coord.base import ClusterEvent, Coordinator
from server.coord.etcd import EtcdCoordinator
from server.coord.local import LocalCoordinator
from server.domain.canonical import canonical_json, checksum
from server.domain.context import DomainContext
from server.domain.releases import ReleaseService
from server.published import PublishedConfigs
from server.records import Release, utc_now
from server.store.db import SqliteDatabase
from server.store.store import Store

LOCK_TTL = 2


def make_release(app: str, env: str, version: int, **items: str) -> Release:
    """A release as the store would have committed it."""
    values = items or {"v": str(version)}
    return Release(app, env, version, checksum(values), "test", "", utc_now(), values)


class StoreReleases:
    """A real SQLite store, read through the server's own ReleaseService (the release source).

    Tests commit releases directly, as a publish on some replica would have.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        ctx = DomainContext(store, LocalCoordinator(), PublishedConfigs(), LimitsSection())
        self.source = ReleaseService(ctx)

    async def commit(self, release: Release) -> Release:
        """Store release as the latest of its env (creating the app and env when new)."""
        async with self.store.transaction() as q:
            app_id = await q.app_id(release.app)
            if app_id is None:
                app_id = await q.insert_app(release.app, "", utc_now(), "test")
            ref = await q.env(release.app, release.env)
            env_id = ref.id if ref else await q.insert_env(app_id, release.env, utc_now())
            await q.insert_release(env_id, release, canonical_json(release.items))
        return release

    async def drop_app(self, app: str) -> None:
        """Delete an app from the store, as DELETE /apps/{app} does."""
        async with self.store.transaction() as q:
            app_id = await q.app_id(app)
            assert app_id is not None
            await q.delete_app(app_id)

    async def latest_releases(self) -> list[Release]:
        return await self.source.latest_releases()

    async def latest_versions(self) -> dict[tuple[str, str], int]:
        return await self.source.latest_versions()

    async def latest_release(self, app: str, env: str) -> Release | None:
        return await self.source.latest_release(app, env)


@dataclasses.dataclass
class Node:
    """One replica's coordinator with what it feeds."""

    coordinator: Coordinator
    published: PublishedConfigs
    events: list[ClusterEvent]

    @property
    def etcd(self) -> EtcdCoordinator:
        assert isinstance(self.coordinator, EtcdCoordinator)
        return self.coordinator


NodeFactory = Callable[..., Coroutine[Any, Any, Node]]


@pytest.fixture(scope="module")
def etcd_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One etcd member shared by a module's tests (each test uses its own prefix)."""
    with EtcdCluster(1, tmp_path_factory.mktemp("coord-etcd")) as cluster:
        yield cluster


@pytest.fixture
def prefix() -> str:
    return f"/cc-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StoreReleases]:
    """A fresh SQLite store for the releases the coordinators load and repair from."""
    real = Store(SqliteDatabase(tmp_path / "store.db"))
    await real.open()
    try:
        yield StoreReleases(real)
    finally:
        await real.close()


@pytest.fixture
async def node_factory(
    request: pytest.FixtureRequest, prefix: str, store: StoreReleases
) -> AsyncIterator[NodeFactory]:
    """node_factory(kind, endpoints=None, **etcd settings) -> a started Node; closed after."""
    nodes: list[Node] = []

    async def make(kind: str, endpoints: list[str] | None = None, **settings: Any) -> Node:
        coordinator: Coordinator
        if kind == "local":
            coordinator = LocalCoordinator()
        else:
            if endpoints is None:
                cluster: EtcdCluster = request.getfixturevalue("etcd_module")
                endpoints = cluster.client_endpoints
            config = EtcdSection(
                endpoints=tuple(endpoints),
                prefix=prefix,
                lock_ttl=settings.pop("lock_ttl", LOCK_TTL),
                refresh_interval=settings.pop("refresh_interval", 3600.0),
            )
            coordinator = EtcdCoordinator(config, f"http://127.0.0.1:{free_port()}")
        node = Node(coordinator, PublishedConfigs(), [])
        coordinator.on_event(node.events.append)
        await coordinator.start(node.published, store)
        nodes.append(node)
        return node

    yield make
    for node in reversed(nodes):
        await node.coordinator.close()


@pytest.fixture
async def raw_etcd(etcd_module: EtcdCluster) -> AsyncIterator[aetcd.Client]:
    """A plain aetcd client on the module's etcd, to act behind the servers' backs."""
    host, port = etcd_module.client_endpoints[0].rsplit(":", 1)
    async with aetcd.Client(host, int(port)) as client:
        yield client


def dead_endpoint() -> str:
    """A loopback host:port nothing listens on."""
    return f"127.0.0.1:{free_port()}"
