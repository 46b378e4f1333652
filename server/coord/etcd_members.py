"""Replica registration under a lease, and what the cluster view shows about etcd."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aetcd
import aetcd.exceptions
import orjson

from server.coord.etcd_conn import EtcdAccess, EtcdConnection, EtcdUnavailable, LeaderClient
from server.coord.etcd_keys import Keys, decode_json

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.0


class Membership:
    """Keeps `{prefix}/replicas/{id}` alive on its own lease with this replica's current info."""

    def __init__(
        self,
        conn: EtcdConnection,
        keys: Keys,
        replica_id: str,
        info: Callable[[], dict[str, Any]],
        ttl: int,
    ) -> None:
        self.conn = conn
        self.key = keys.replica(replica_id)
        self.keys = keys
        self.info = info
        self.ttl = ttl
        self.lease_id: int | None = None
        self._written: bytes | None = None
        self._lease_listeners: list[Callable[[], None]] = []

    def add_lease_listener(self, listener: Callable[[], None]) -> None:
        """Call listener each time the registration gets a new lease (keys on it are gone)."""
        self._lease_listeners.append(listener)

    async def run(self) -> None:
        """Register, keep the lease alive, rewrite the record when the info changes."""
        while True:
            try:
                await self._tick()
            except EtcdUnavailable as exc:
                log.debug("replica registration: %s", exc)
            except aetcd.exceptions.ClientError as exc:
                log.info("replica registration: %s; registering again", exc)
                self.lease_id = None
            except Exception:
                log.exception("replica registration failed")
            await asyncio.sleep(self.ttl / 3)

    async def _tick(self) -> None:
        if self.lease_id is not None:
            reply = await self.conn.call(lambda c: c.refresh_lease(self.lease_id), within=2.0)
            if reply is None or reply.TTL <= 0:
                log.warning("replica lease expired; registering again")
                self.lease_id = None
        if self.lease_id is None:
            lease = await self.conn.call(lambda c: c.lease(self.ttl), within=2.0)
            self.lease_id = lease.id
            self._written = None
            for listener in self._lease_listeners:
                listener()
        value = orjson.dumps(self.info())
        if value != self._written:
            lease_id = self.lease_id
            await self.conn.call(lambda c: c.put(self.key, value, lease=lease_id), within=2.0)
            self._written = value

    async def close(self) -> None:
        """Deregister at once (revoking the lease deletes the record)."""
        if self.lease_id is None:
            return
        lease_id, self.lease_id = self.lease_id, None
        with contextlib.suppress(EtcdUnavailable, aetcd.exceptions.ClientError):
            await self.conn.call(lambda c: c.revoke_lease(lease_id), within=2.0)

    async def replicas(self) -> list[dict[str, Any]]:
        """Every registered replica's record."""
        found = await self.conn.call(lambda c: c.get_prefix(self.keys.replicas), within=2.0)
        return sorted((decode_json(kv.value) for kv in found), key=lambda r: str(r.get("id", "")))


async def etcd_members(conn: EtcdConnection) -> list[dict[str, Any]]:
    """The etcd members, each probed directly for health and leadership."""

    async def listing(c: aetcd.Client) -> list[Any]:
        return [m async for m in c.members()]

    members = await conn.call(listing, within=2.0)
    # The probes need no token (status answers anyone who passes TLS): no sign-in each time.
    access = conn.access.anonymous()
    probes = await asyncio.gather(*(_probe(m.client_urls, access) for m in members))
    result = []
    for member, (healthy, leader_id, error) in zip(members, probes, strict=True):
        entry: dict[str, Any] = {
            "id": f"{member.id:x}",
            "name": member.name,
            "client_urls": list(member.client_urls),
            "peer_urls": list(member.peer_urls),
            "healthy": healthy,
            "leader": healthy and leader_id == member.id,
        }
        if error:
            entry["error"] = error
        result.append(entry)
    return result


async def _probe(client_urls: list[str], access: EtcdAccess) -> tuple[bool, int | None, str]:
    """(healthy, the leader it sees, error) for one member."""
    if not client_urls:
        return False, None, "no client URL (not started yet?)"
    parts = urlsplit(client_urls[0])
    if parts.hostname is None or parts.port is None:
        return False, None, f"cannot probe {client_urls[0]}"
    client = LeaderClient(parts.hostname, parts.port, timeout=PROBE_TIMEOUT, access=access)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT + 0.5):
            status = await client.status()
        leader = status.leader.id if status.leader is not None else None
        return leader is not None, leader, "" if leader is not None else "no leader"
    except Exception as exc:  # any failure is what the view reports
        return False, None, (str(exc).splitlines() or [type(exc).__name__])[0]
    finally:
        with contextlib.suppress(Exception):
            await client.close()
