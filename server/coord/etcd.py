"""The etcd coordinator: N replicas on one store and one etcd cluster act as one.

Pieces (one module each): `etcd_conn` (endpoint list and failover), `etcd_lock` (publish lock
and fencing), `etcd_sync` (watch, reload, scheduled refresh and repair), `etcd_members`
(replica registration, etcd member health), `etcd_keys` (key layout and records).

A publish: acquire the lock of (app, env) -> fence (epoch = etcd cluster id, token = the
claim's create_revision) -> the store commits version = latest + 1, refusing a fence older
than the env's recorded one -> `distribute` writes `{prefix}/releases/{app}/{env}` in a
transaction that compares the claim's create_revision (the claim is still ours) and deletes
the claim, which releases the lock -> every replica's watch applies it. The store is the source
of truth; etcd is the fast path and is repaired from the store.

What each failure (a holder killed or paused, etcd members or all of etcd, the store, a
replica) leads to is listed once, in docs/failures.md; keep it in step with this package.

Fault injection for tests: `CONFIGCENTER_FAULT_HOLD_LOCK_SECONDS` (off by default) makes a
holder sleep after acquiring the lock, before the store transaction (see etcd_lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aetcd
import aetcd.exceptions
import aetcd.utils

from server.config import EtcdSection
from server.coord.base import ReleaseSource
from server.coord.etcd_batch import TxnBatch
from server.coord.etcd_conn import EtcdAccess, EtcdConnection, EtcdUnavailable
from server.coord.etcd_instances import InstanceShare
from server.coord.etcd_keys import Keys, encode_event, encode_release
from server.coord.etcd_lock import (
    ETCD_WITHIN,
    FAULT_DISTRIBUTE_HOLD_ENV,
    TXN,
    PublishLocks,
    fault_hold_seconds,
    unavailable,
)
from server.coord.etcd_members import Membership, etcd_members
from server.coord.etcd_sync import ReleaseSync
from server.errors import AppError, ErrorCode
from server.events import AppDeleted, ClusterEvent, EnvDeleted, EventHandlers, EventT
from server.instances import InstanceRegistry
from server.published import PublishedConfigs
from server.records import Fence, Release
from server.tasks import BackgroundTasks

log = logging.getLogger(__name__)

EVENT_TTL = 60
# Events are written after the store commit: do not hold the answer long when etcd is away.
EVENT_WITHIN = 2.0
# A replica starts (serving the store's releases) even when etcd does not answer.
START_WITHIN = 2.0
MAX_PENDING_EVENTS = 10_000


class EtcdCoordinator:
    """Cluster mode: publish lock, distribution, events and membership on etcd."""

    mode = "cluster"

    def __init__(self, config: EtcdSection, advertise_url: str) -> None:
        self.config = config
        self.keys = Keys(config.prefix)
        self.address = _reachable(advertise_url)
        self.replica_id = f"{urlsplit(self.address).netloc}-{os.getpid()}"
        self.started_at = time.time()
        self.conn = EtcdConnection(config.endpoints, EtcdAccess.from_config(config))
        self.batch = TxnBatch(self.conn, ETCD_WITHIN)
        self.locks = PublishLocks(
            self.conn,
            self.keys,
            config.lock_ttl,
            self.replica_id,
            batch=self.batch,
            fault_hold=fault_hold_seconds(),
        )
        self.membership = Membership(
            self.conn, self.keys, self.replica_id, self._info, max(config.lock_ttl, 5)
        )
        self.fault_distribute_hold = fault_hold_seconds(name=FAULT_DISTRIBUTE_HOLD_ENV)
        self.fenced_out = 0
        self.last_refresh: float | None = None
        self._handlers = EventHandlers()
        self._pending: list[ClusterEvent] = []
        self._published: PublishedConfigs | None = None
        self._subscribers: Callable[[], int] = lambda: 0
        self._sync: ReleaseSync | None = None
        self._share: InstanceShare | None = None
        self.tasks = BackgroundTasks()  # watch, refresh, membership, instance summaries

    def share_instances(self, registry: InstanceRegistry) -> None:
        registry.replica = self.replica_id  # its own summary is the one under this name
        self._share = InstanceShare(
            self.conn, self.keys, self.replica_id, registry, self.membership
        )

    @property
    def sync(self) -> ReleaseSync:
        """The watch and refresh (after start)."""
        assert self._sync is not None, "the coordinator is not started"
        return self._sync

    async def start(
        self,
        published: PublishedConfigs,
        source: ReleaseSource,
        subscribers: Callable[[], int] | None = None,
    ) -> None:
        self._published = published
        if subscribers is not None:
            self._subscribers = subscribers
        self._sync = ReleaseSync(
            self.conn, self.keys, self.replica_id, published, source, self._dispatch
        )
        if self._share is not None:
            self._sync.instances = self._share.registry
        await self.sync.load_store()
        try:
            await self.sync.reload(within=START_WITHIN)
        except EtcdUnavailable as exc:
            if exc.refused:
                # A misconfiguration, not an outage: say so now rather than run unready.
                raise AppError(
                    ErrorCode.COORDINATOR_UNAVAILABLE,
                    f"etcd {exc}; check [etcd] ca_file, cert_file, key_file, username, "
                    "password (CONFIGCENTER_ETCD_*)",
                ) from None
            log.warning("etcd unreachable at start (%s); serving the store's releases", exc)
        self.tasks.spawn("etcd-watch", self.sync.run_watch())
        self.tasks.every("etcd-refresh", self.config.refresh_interval, self.refresh_once)
        self.tasks.spawn("etcd-membership", self.membership.run())
        if self._share is not None:
            self.tasks.spawn("etcd-instances", self._share.run())
        log.info(
            "cluster coordinator %s started (etcd %s%s%s, prefix %s)",
            self.replica_id,
            ",".join(self.config.endpoints),
            " over TLS" if self.config.tls else "",
            f" as {self.config.username}" if self.config.username else "",
            self.config.prefix,
        )

    async def close(self) -> None:
        await self.tasks.close()
        await self.locks.close()
        await self.batch.close()
        await self.membership.close()
        await self.conn.close()

    def publish_lock(self, app: str, env: str) -> contextlib.AbstractAsyncContextManager[Fence]:
        return self.locks.hold(app, env)

    async def distribute(self, release: Release, fence: Fence) -> None:
        hold = self.locks.held(release.app, release.env)
        key = self.keys.release(release.app, release.env)
        value = encode_release(release)
        written = False
        if hold is not None and (hold.epoch, hold.token) == (fence.epoch, fence.token):
            if self.fault_distribute_hold:
                log.warning(
                    "fault injection: committed %s/%s version %d, holding %.1f s before etcd",
                    release.app,
                    release.env,
                    release.version,
                    self.fault_distribute_hold,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hold.lost.wait(), self.fault_distribute_hold)

            async def write() -> bool:
                t = TXN
                # The record and the claim's delete in one transaction, guarded by the fence:
                # the lock is released at the revision the record appears, with no write of
                # its own (a holder whose claim is gone writes neither). It goes with this
                # replica's other concurrent transactions (etcd_batch).
                ok, responses = await self.batch.run(
                    compare=[t.create(hold.key) == hold.token],
                    success=[t.put(key, value), t.delete(hold.key)],
                    failure=[t.get(key)],
                    keys=frozenset({key, hold.key}),
                    size=len(value),
                )
                if ok:
                    return True
                # A retry of a transaction etcd applied before its answer was lost finds the
                # claim gone and the record ours: written (and the claim deleted) all the same.
                found = responses[0][0] if responses and responses[0] else None
                return found is not None and found[0] == value

            try:
                written = await write()
                hold.released = written
                if not written:
                    self.fenced_out += 1
            except (EtcdUnavailable, aetcd.exceptions.ClientError) as exc:
                log.warning("etcd write of %s/%s failed: %s", release.app, release.env, exc)
        if not written:
            log.warning(
                "%s/%s version %d is committed but not in etcd (lock lost or etcd away); "
                "the scheduled refresh delivers it",
                release.app,
                release.env,
                release.version,
            )
        if self._published is not None:
            self._published.apply(release)

    async def announce(self, event: ClusterEvent) -> None:
        self._dispatch(event)
        if self._pending:
            self._queue(event)
            return
        try:
            await self._write_event(event)
        except EtcdUnavailable as exc:
            log.warning("event %r not written to etcd (%s); queued", event, exc)
            self._queue(event)
        except aetcd.exceptions.ClientError as exc:
            log.error("event %r refused by etcd: %s", event, exc)

    def on_event(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> None:
        self._handlers.add(event_type, handler)

    async def check(self) -> None:
        try:
            await self.conn.call(lambda c: c.get(self.keys.root), within=2.0)
        except EtcdUnavailable as exc:
            raise unavailable(exc) from None

    async def describe(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "mode": self.mode,
            "replica": self.replica_id,
            "prefix": self.config.prefix,
            "lock_ttl": self.config.lock_ttl,
            "refresh_interval": self.config.refresh_interval,
            "etcd_endpoint": self.conn.endpoint,
            "etcd_cluster_id": f"{self.sync.cluster_id:x}" if self.sync.cluster_id else None,
            "watching": self.sync.watching,
            "revision": self.sync.last_revision,
            "repairs": dict(self.sync.repairs),
            "pending_events": len(self._pending),
        }
        if self._share is not None:
            result["instances"] = {
                "local": len(self._share.registry),
                "peers": self._share.registry.peers,
                "summary_writes": self._share.writes,
            }
        try:
            result["replicas"] = await self.membership.replicas()
            result["etcd_members"] = await etcd_members(self.conn)
            result["lock_holders"] = await self.locks.holders()
        except (EtcdUnavailable, aetcd.exceptions.ClientError) as exc:
            result.setdefault("replicas", [self._info()])
            result.setdefault("etcd_members", [])
            result.setdefault("lock_holders", [])
            result["etcd_error"] = str(exc)
        return result

    async def refresh_once(self) -> None:
        """One scheduled refresh: queued events, then the repair pass."""
        try:
            await self._flush_pending()
            await self.sync.refresh()
            self.last_refresh = time.time()
        except EtcdUnavailable as exc:
            log.info("refresh skipped: etcd unavailable (%s)", exc)
        except AppError as exc:
            # The store is down (a restart, a failover): the next interval tries again.
            log.warning("refresh skipped: %s", exc.message)

    # internals

    def _dispatch(self, event: ClusterEvent) -> None:
        if isinstance(event, AppDeleted):
            log.info("app %s deleted", event.app)
        elif isinstance(event, EnvDeleted):
            log.info("env %s/%s deleted", event.app, event.env)
        self._handlers.dispatch(event)

    def _queue(self, event: ClusterEvent) -> None:
        if len(self._pending) >= MAX_PENDING_EVENTS:
            dropped = self._pending.pop(0)
            log.error("event queue full; dropped %r", dropped)
        self._pending.append(event)

    async def _flush_pending(self) -> None:
        while self._pending:
            try:
                await self._write_event(self._pending[0])
            except aetcd.exceptions.ClientError as exc:
                log.error("queued event %r refused by etcd: %s", self._pending[0], exc)
            self._pending.pop(0)

    async def _write_event(self, event: ClusterEvent) -> None:
        key = self.keys.event(self.replica_id, uuid.uuid4().hex)
        value = encode_event(event, self.replica_id)

        async def write(c: aetcd.Client) -> None:
            t = c.transactions
            lease = await c.lease(EVENT_TTL)
            ops = [t.put(key, value, lease=lease.id)]
            if isinstance(event, AppDeleted):
                # One transaction: no replica can see the records gone without the event.
                releases = self.keys.app_releases(event.app)
                ops.append(t.delete(releases, range_end=aetcd.utils.prefix_range_end(releases)))
            elif isinstance(event, EnvDeleted):
                ops.append(t.delete(self.keys.release(event.app, event.env)))
            await c.transaction(compare=[], success=ops, failure=[])

        await self.conn.call(write, within=EVENT_WITHIN)

    def _info(self) -> dict[str, Any]:
        return {
            "id": self.replica_id,
            "address": self.address,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "subscribers": self._subscribers(),
            "published_envs": len(self._published) if self._published is not None else 0,
            "last_refresh": self.last_refresh,
            "watching": self._sync.watching if self._sync is not None else False,
            "repairs": sum(self._sync.repairs.values()) if self._sync is not None else 0,
        }


def _reachable(advertise_url: str) -> str:
    """The advertised URL, with a wildcard listen address replaced by the host name."""
    parts = urlsplit(advertise_url)
    if parts.hostname in (None, "", "0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        return f"{parts.scheme}://{socket.gethostname()}:{parts.port}"
    return advertise_url
