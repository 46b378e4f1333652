"""Coordinators on a real etcd (one member per module) or in process, and a release source."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aetcd
import pytest

from devservices import EtcdCluster, free_port
from server.config import EtcdSection
from server.coord.base import Coordinator
from server.coord.etcd import EtcdCoordinator
from server.coord.local import LocalCoordinator
from server.events import EVENT_TYPES
from server.instances import InstanceRegistry
from server.published import PublishedConfigs
from server.store.db import SqliteDatabase
from server.store.store import Store
from tests.coord.helpers import LOCK_TTL, Node, NodeFactory, StoreReleases


@pytest.fixture(scope="module")
def etcd_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One etcd member shared by a module's tests (each test uses its own prefix)."""
    with EtcdCluster(1, tmp_path_factory.mktemp("coord-etcd")) as cluster:
        yield cluster


@pytest.fixture
def prefix() -> str:
    """An etcd key prefix of this test only."""
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
    """node_factory(kind, endpoints=None, **[etcd] settings) -> a started Node; closed after.

    `instances=` a registry: the node shares it (Coordinator.share_instances).
    """
    nodes: list[Node] = []

    async def make(kind: str, endpoints: list[str] | None = None, **settings: Any) -> Node:
        coordinator: Coordinator
        instances: InstanceRegistry | None = settings.pop("instances", None)
        if kind == "local":
            coordinator = LocalCoordinator()
        else:
            if endpoints is None:
                cluster: EtcdCluster = request.getfixturevalue("etcd_module")
                endpoints = cluster.client_endpoints
            config = EtcdSection(
                endpoints=tuple(endpoints),
                prefix=settings.pop("prefix", prefix),
                lock_ttl=settings.pop("lock_ttl", LOCK_TTL),
                refresh_interval=settings.pop("refresh_interval", 3600.0),
                **settings,  # TLS files and user
            )
            coordinator = EtcdCoordinator(config, f"http://127.0.0.1:{free_port()}")
        if instances is not None:
            coordinator.share_instances(instances)
        node = Node(coordinator, PublishedConfigs(), [])
        for event_type in EVENT_TYPES:
            coordinator.on_event(event_type, node.events.append)
        try:
            await coordinator.start(node.published, store)
        except BaseException:
            await coordinator.close()  # a start that fails leaves nothing running
            raise
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
