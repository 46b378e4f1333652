"""Coordinators on a real etcd (one member per module) or in process, and a release source."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import aetcd
import pytest

from server.config import EtcdSection
from server.coord.base import ClusterEvent, Coordinator
from server.coord.etcd import EtcdCoordinator
from server.coord.local import LocalCoordinator
from server.devservices import EtcdCluster, free_port
from server.domain.canonical import checksum
from server.domain.model import Release, utc_now
from server.domain.published import PublishedConfigs

LOCK_TTL = 2


def make_release(app: str, env: str, version: int, **items: str) -> Release:
    """A release as the store would have committed it."""
    values = items or {"v": str(version)}
    return Release(app, env, version, checksum(values), "test", "", utc_now(), values)


class StoreReleases:
    """The store side of a ReleaseSource: releases a test says were committed."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], Release] = {}

    def commit(self, release: Release) -> Release:
        self.latest[(release.app, release.env)] = release
        return release

    def drop_app(self, app: str) -> None:
        for key in [k for k in self.latest if k[0] == app]:
            del self.latest[key]

    async def latest_releases(self) -> list[Release]:
        return list(self.latest.values())

    async def latest_versions(self) -> dict[tuple[str, str], int]:
        return {key: release.version for key, release in self.latest.items()}

    async def latest_release(self, app: str, env: str) -> Release | None:
        return self.latest.get((app, env))


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
def store() -> StoreReleases:
    return StoreReleases()


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
