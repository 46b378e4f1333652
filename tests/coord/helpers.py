"""Coordinator test helpers: a release source on a real store, nodes, releases, endpoints."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from devservices import free_port
from server.config import LimitsSection
from server.coord.base import Coordinator
from server.coord.etcd import EtcdCoordinator
from server.coord.local import LocalCoordinator
from server.domain.canonical import canonical_json, checksum
from server.domain.context import DomainContext
from server.domain.releases import ReleaseService
from server.events import ClusterEvent
from server.published import PublishedConfigs
from server.records import Release, Stamp, utc_now
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

    async def drop_env(self, app: str, env: str) -> None:
        """Delete one env from the store, as DELETE /apps/{app}/envs/{env} does."""
        async with self.store.transaction() as q:
            ref = await q.env(app, env)
            assert ref is not None
            await q.delete_env(ref.id)

    async def latest_releases(self) -> list[Release]:
        return await self.source.latest_releases()

    async def latest_stamps(self) -> dict[tuple[str, str], Stamp]:
        return await self.source.latest_stamps()

    async def latest_release(self, app: str, env: str) -> Release | None:
        return await self.source.latest_release(app, env)

    async def restore_above(self, app: str, env: str, seen: int) -> Release | None:
        # Committed to the store only (the source's coordinator is in process): the refresh
        # that follows writes it to etcd as a release the store has and etcd lacks.
        return await self.source.restore_above(app, env, seen)


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


class NodeFactory(Protocol):
    """The node_factory fixture: a started Node of `kind` ("local" or "etcd")."""

    async def __call__(
        self, kind: str, endpoints: list[str] | None = None, **settings: Any
    ) -> Node: ...


def dead_endpoint() -> str:
    """A loopback host:port nothing listens on."""
    return f"127.0.0.1:{free_port()}"
