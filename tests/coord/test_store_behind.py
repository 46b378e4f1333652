"""A store restored from an older backup, behind etcd: the store wins, no version goes down.

Two replicas on a real etcd and one SQLite store, each wired as create_app wires it: its
coordinator's release source is its own ReleaseService, whose publish lock and distribution
are that coordinator's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aetcd
import pytest

from devservices import EtcdCluster, free_port
from server.admin_commands import CLI_ACTOR
from server.config import AuthSection, EtcdSection, LimitsSection
from server.coord.etcd import EtcdCoordinator
from server.coord.etcd_keys import decode_release
from server.domain import backup
from server.domain.context import DomainContext
from server.domain.services import Services
from server.published import PublishedConfigs
from server.records import AuditAction, Release
from tests.coord.helpers import LOCK_TTL, StoreReleases

pytestmark = pytest.mark.etcd


@dataclass
class Replica:
    """One replica's coordinator and services, and every version its subscribers were sent."""

    coordinator: EtcdCoordinator
    published: PublishedConfigs
    services: Services
    sent: list[int] = field(default_factory=list)


ReplicaFactory = Callable[[], Awaitable[Replica]]


@pytest.fixture
async def replica_factory(
    etcd_module: EtcdCluster, prefix: str, store: StoreReleases
) -> AsyncIterator[ReplicaFactory]:
    """replica_factory() -> a started replica on the module's etcd and the test's store."""
    started: list[Replica] = []

    async def make() -> Replica:
        config = EtcdSection(
            endpoints=tuple(etcd_module.client_endpoints),
            prefix=prefix,
            lock_ttl=LOCK_TTL,
            refresh_interval=3600.0,  # the test runs each refresh itself
        )
        coordinator = EtcdCoordinator(config, f"http://127.0.0.1:{free_port()}")
        published = PublishedConfigs()
        ctx = DomainContext(store.store, coordinator, published, LimitsSection())
        replica = Replica(coordinator, published, Services.build(ctx, AuthSection()))
        published.add_listener(lambda release: replica.sent.append(release.version))
        await coordinator.start(published, replica.services.releases)
        started.append(replica)
        return replica

    yield make
    for replica in reversed(started):
        await replica.coordinator.close()
        replica.services.close()


async def publish(replica: Replica, value: str) -> Release:
    """Set the item and publish it from replica."""
    await replica.services.drafts.put_item(CLI_ACTOR, "shop", "prod", "k", value, None)
    return await replica.services.releases.publish(CLI_ACTOR, "shop", "prod", "")


async def until(condition: Callable[[], bool], within: float = 10.0, what: str = "state") -> None:
    """Poll condition until it holds (bounded)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within} s")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("version_floor", [0, None], ids=["exact-versions", "default-floor"])
async def test_a_store_restored_behind_etcd_moves_every_replica_up_with_the_backups_items(
    replica_factory: ReplicaFactory,
    raw_etcd: aetcd.Client,
    tmp_path: Path,
    version_floor: int | None,
) -> None:
    a, b = await replica_factory(), await replica_factory()
    await a.services.apps.create_app(CLI_ACTOR, "shop", "", ["prod"])
    for n in range(1, 6):
        await publish(a if n % 2 else b, f"v{n}")
    path = tmp_path / "at-5.gz"
    await backup.backup(a.services.ctx.store, path)
    for n in (6, 7):
        await publish(a, f"v{n}")
    await until(lambda: b.published.version("shop", "prod") == 7, what="version 7 on b")

    # The operator restores the backup taken at version 5 while both replicas run.
    await backup.restore(a.services.ctx.store, path, replace=True, version_floor=version_floor)

    await a.coordinator.refresh_once()
    await b.coordinator.refresh_once()  # finds nothing left to do, or waits for a's lock
    for replica in (a, b):
        published = replica.published
        await until(lambda: published.version("shop", "prod") == 8, what="version 8")  # noqa: B023
        current = replica.published.get("shop", "prod")
        assert current is not None
        assert current.items == {"k": "v5"}
        # Every version its subscribers were sent went up; 5 never came back.
        assert replica.sent == sorted(set(replica.sent))
        assert replica.sent[-2:] == [7, 8]
    record = await raw_etcd.get(a.coordinator.keys.release("shop", "prod"))
    assert record is not None
    assert decode_release(record.value).version == 8
    async with a.services.ctx.store.reader() as q:
        ref = await q.env("shop", "prod")
        assert ref is not None
        assert await q.latest_version(ref.id) == 8
        entries = await q.audit("shop", 1, None)
    assert entries[0].action == AuditAction.RELEASE_RESTORE
    # The store's own restore already moved the env when it knew the replaced store's 7.
    made_by_refresh = version_floor == 0
    assert entries[0].actor == ("system" if made_by_refresh else "cli")
    repairs = a.coordinator.sync.repairs["store_behind_etcd"]
    assert repairs == (1 if made_by_refresh else 0)
    assert b.coordinator.sync.repairs["store_behind_etcd"] == 0

    # Publishing goes on from there; nothing is repaired twice.
    assert (await publish(b, "v9")).version == 9
    await a.coordinator.refresh_once()
    assert a.coordinator.sync.repairs["store_behind_etcd"] == repairs


async def test_a_publish_before_the_refresh_goes_above_what_the_replica_served(
    replica_factory: ReplicaFactory, tmp_path: Path
) -> None:
    a, b = await replica_factory(), await replica_factory()
    await a.services.apps.create_app(CLI_ACTOR, "shop", "", ["prod"])
    for n in range(1, 4):
        await publish(a, f"v{n}")
    path = tmp_path / "at-3.gz"
    await backup.backup(a.services.ctx.store, path)
    await publish(a, "v4")
    await until(lambda: b.published.version("shop", "prod") == 4, what="version 4 on b")
    await backup.restore(a.services.ctx.store, path, replace=True, version_floor=0)
    # The store says 3; b has served 4: its next release is 5, never a second 4.
    release = await publish(b, "new")
    assert release.version == 5
    await until(lambda: a.published.version("shop", "prod") == 5, what="version 5 on a")
    await a.coordinator.refresh_once()
    assert a.coordinator.sync.repairs["store_behind_etcd"] == 0
