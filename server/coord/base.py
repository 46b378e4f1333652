"""The coordination seam: publish lock, release distribution and cluster events.

Standalone mode runs the in-process coordinator; cluster mode the etcd one. No code
outside this package knows which one runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from server.events import ClusterEvent, EventT
from server.instances import InstanceRegistry
from server.published import PublishedConfigs
from server.records import Fence, Release, Stamp


class ReleaseSource(Protocol):
    """Where a coordinator reads the store's latest releases (for loading and repair)."""

    async def latest_releases(self) -> list[Release]:
        """The newest release of every env, with items."""
        ...

    async def latest_stamps(self) -> dict[tuple[str, str], Stamp]:
        """The newest (version, gray step) of every env that has released (cheap: no items)."""
        ...

    async def latest_release(self, app: str, env: str) -> Release | None:
        """The newest release of one env, with items."""
        ...

    async def restore_above(self, app: str, env: str, seen: int) -> Release | None:
        """The store's latest release of an env made again above `seen` (a version etcd holds
        and the store lacks) under the publish lock, and distributed; None when not needed."""
        ...


class Coordinator(Protocol):
    """Publish lock, release distribution and change notification."""

    mode: str
    replica_id: str
    """This replica's name in the cluster view and in the instance list."""

    def share_instances(self, registry: InstanceRegistry) -> None:
        """Before start: share this replica's instances with the other replicas (coalesced,
        one key per replica that dies with it) and feed theirs into registry."""
        ...

    async def start(
        self,
        published: PublishedConfigs,
        source: ReleaseSource,
        subscribers: Callable[[], int] | None = None,
    ) -> None:
        """Load the published releases into memory and begin following changes.

        subscribers, when given, counts this replica's open watch sockets (membership).
        """
        ...

    async def close(self) -> None:
        """Stop background work and release resources."""
        ...

    def publish_lock(self, app: str, env: str) -> contextlib.AbstractAsyncContextManager[Fence]:
        """Hold the publish lock of one env; yields its fencing token."""
        ...

    async def distribute(self, release: Release, fence: Fence) -> None:
        """Make a committed release reach every replica's subscribers."""
        ...

    async def announce(self, event: ClusterEvent) -> None:
        """Tell every replica (this one included) about an event."""
        ...

    def on_event(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> None:
        """Call handler with every event of event_type announced on any replica."""
        ...

    async def check(self) -> None:
        """Raise AppError(coordinator_unavailable) when the coordinator does not answer."""
        ...

    async def describe(self) -> dict[str, Any]:
        """What GET /api/v1/cluster shows: replicas, members, lock holders."""
        ...
