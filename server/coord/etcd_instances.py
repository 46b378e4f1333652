"""This replica's instances shared through etcd: one key per replica, on its membership lease.

`{prefix}/instances/{replica id}` holds the replica's summary (server/instances.py), written by
one task, at most every FLUSH_SECONDS however many instances come and go: the registry marks
itself dirty, the task wakes, writes the summary and sleeps. The key lives on the replica's
registration lease, so a killed replica's instances vanish when that lease expires. The other
replicas read the summaries from the watch they already hold on the prefix (etcd_sync), and
again at each refresh, never per request.
"""

from __future__ import annotations

import asyncio
import logging

import aetcd.exceptions

from server.coord.etcd_conn import EtcdConnection, EtcdUnavailable
from server.coord.etcd_keys import Keys
from server.coord.etcd_members import Membership
from server.instances import InstanceRegistry

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
RETRY_SECONDS = 1.0
WRITE_WITHIN = 2.0


class InstanceShare:
    """Writes this replica's summary when it changed, on the membership lease."""

    def __init__(
        self,
        conn: EtcdConnection,
        keys: Keys,
        replica_id: str,
        registry: InstanceRegistry,
        membership: Membership,
    ) -> None:
        self.conn = conn
        self.key = keys.instances_of(replica_id)
        self.registry = registry
        self.membership = membership
        self.writes = 0
        self._wake = asyncio.Event()
        self._lease: int | None = None
        registry.add_listener(self._wake.set)
        membership.add_lease_listener(self._new_lease)

    def _new_lease(self) -> None:
        # A new lease (a first registration, or one after expiry): the summary goes on it.
        self.registry.changed()
        self._wake.set()

    async def run(self) -> None:
        """Write the summary whenever it changed; at most one write every FLUSH_SECONDS."""
        self.registry.changed()  # the first one, empty or not, announces this replica
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.registry.dirty:
                continue
            lease = self.membership.lease_id
            if lease is None:
                # Not registered yet: the lease listener wakes us once it is.
                continue
            try:
                await self._write(self.registry.summary(), lease)
            except (EtcdUnavailable, aetcd.exceptions.ClientError) as exc:
                log.info("instance summary not written (%s); retrying", exc)
                await self._retry()
                continue
            except Exception:
                # The list must outlive any surprise: log it, and try again.
                log.exception("instance summary failed; retrying")
                await self._retry()
                continue
            await asyncio.sleep(FLUSH_SECONDS)

    async def _retry(self) -> None:
        self.registry.changed()
        await asyncio.sleep(RETRY_SECONDS)
        self._wake.set()

    async def _write(self, value: bytes, lease: int) -> None:
        await self.conn.call(lambda c: c.put(self.key, value, lease=lease), within=WRITE_WITHIN)
        self.writes += 1
