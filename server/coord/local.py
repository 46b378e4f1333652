"""The in-process coordinator for standalone mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from server.coord.base import ReleaseSource
from server.events import ClusterEvent, EventHandlers, EventT
from server.instances import InstanceRegistry
from server.published import PublishedConfigs
from server.records import Fence, Release

log = logging.getLogger(__name__)

LOCAL_EPOCH = "local"


class LocalCoordinator:
    """One process: asyncio locks, direct delivery, events called in place."""

    mode = "standalone"

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._holders: dict[tuple[str, str], float] = {}
        self._handlers = EventHandlers()
        self._published: PublishedConfigs | None = None
        self._started_at = time.time()
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}"

    def share_instances(self, registry: InstanceRegistry) -> None:
        # One process: its registry already holds every instance there is.
        registry.replica = self.replica_id

    async def start(
        self,
        published: PublishedConfigs,
        source: ReleaseSource,
        subscribers: Callable[[], int] | None = None,
    ) -> None:
        self._published = published
        for release in await source.latest_releases():
            published.apply(release)
        log.info("standalone coordinator loaded %d published envs", len(published))

    async def close(self) -> None:
        self._published = None

    @contextlib.asynccontextmanager
    async def publish_lock(self, app: str, env: str) -> AsyncIterator[Fence]:
        key = (app, env)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self._holders[key] = time.time()
            try:
                # The store serialises writers itself; a local fence never refuses.
                yield Fence(LOCAL_EPOCH, 0)
            finally:
                self._holders.pop(key, None)

    async def distribute(self, release: Release, fence: Fence) -> None:
        if self._published is not None:
            self._published.apply(release)

    async def announce(self, event: ClusterEvent) -> None:
        self._handlers.dispatch(event)

    def on_event(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> None:
        self._handlers.add(event_type, handler)

    async def check(self) -> None:
        return None

    async def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "replicas": [
                {
                    "id": self.replica_id,
                    "started_at": self._started_at,
                    "self": True,
                }
            ],
            "etcd_members": [],
            "lock_holders": [
                {"app": app, "env": env, "since": since}
                for (app, env), since in self._holders.items()
            ],
        }
