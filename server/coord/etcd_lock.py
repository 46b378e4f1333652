"""The publish lock of one (app, env) on etcd: a lease, a claim key and a fencing token.

Modelled on etcd's concurrency.Mutex, with the two things aetcd's `Lock` lacks:

- **Keep-alive.** Each hold grants its own lease (TTL `lock_ttl`) and refreshes it every
  TTL/3 while waiting and while held. A holder that dies or stops refreshing (kill -9, a GC
  pause, SIGSTOP, a partition) loses the lease; etcd deletes its claim and the next waiter
  proceeds at most `lock_ttl` (+ etcd's 0.5 s expiry tick) later.
- **Fencing.** The claim `{prefix}/locks/{app}/{env}/{lease}` is created in a transaction
  (`create_revision == 0`). Its create_revision is the fencing token: etcd revisions only grow,
  so a later holder always has a larger token. The epoch is the etcd cluster id, so a wiped
  or rebuilt etcd cluster (revisions restart) starts a new epoch rather than being refused.
  The store records the newest fence per env and refuses an older one (409 `lock_lost`);
  the release record is written with a transaction that compares the claim's create_revision,
  so a holder whose claim is gone cannot write etcd either.

Waiters queue in create_revision order (fair): each watches only the deletion of the claim
just ahead of it. Within one replica, publishers of the same env first queue on an asyncio
lock, so a replica has at most one claim per env.

What a publish is told when acquiring fails:

- etcd does not answer (lease grant, claim or queue read) -> 503 `coordinator_unavailable`.
- our own lease is gone before we hold the lock (it expired while this replica was paused or
  could not renew it, or someone revoked it): etcd answers and our claim is not there, or the
  keep-alive has given the lease up -> 409 `lock_lost`, as the store's fence check answers a
  holder that lost its lease before writing.
- the claims ahead of ours are not gone within `wait_limit` -> 503 `lock_timeout`.

Fault injection (tests only, off by default): when `CONFIGCENTER_FAULT_HOLD_LOCK_SECONDS` is
set, a holder waits that long after acquiring the lock and before writing the store (it logs
"fault injection: holding the lock of APP/ENV" first), so a test can kill or SIGSTOP a
replica while it holds the lock mid-publish. The wait ends early once the lease is lost, so
a paused holder goes on to the store's fence check as soon as it runs again.
`CONFIGCENTER_FAULT_HOLD_DISTRIBUTE_SECONDS` is the same after the store's commit and before
the etcd write ("fault injection: committed APP/ENV ... before etcd"), so a test can kill a
replica whose change only the store has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aetcd
import aetcd.exceptions
import aetcd.rtypes
import orjson
from aetcd.rpc import AioRpcError, StatusCode

from server.coord.etcd_conn import EtcdConnection, EtcdUnavailable
from server.coord.etcd_keys import Keys, decode_json
from server.errors import AppError, ErrorCode
from server.records import Fence

log = logging.getLogger(__name__)

FAULT_HOLD_ENV = "CONFIGCENTER_FAULT_HOLD_LOCK_SECONDS"
FAULT_DISTRIBUTE_HOLD_ENV = "CONFIGCENTER_FAULT_HOLD_DISTRIBUTE_SECONDS"
# How long acquiring may wait on an unreachable etcd before answering 503.
ETCD_WITHIN = 4.0
# A waiter re-reads the queue this often even without a deletion event.
WAIT_POLL = 2.0


def fault_hold_seconds(environ: dict[str, str] | None = None, name: str = FAULT_HOLD_ENV) -> float:
    """A fault-injection hold from the environment; 0 when unset."""
    value = (environ if environ is not None else dict(os.environ)).get(name, "")
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        log.warning("ignoring %s=%r: not a number", name, value)
        return 0.0


def unavailable(error: BaseException | str) -> AppError:
    """The 503 a publish gets when etcd cannot be reached."""
    return AppError(ErrorCode.COORDINATOR_UNAVAILABLE, f"etcd is unavailable: {error}")


def lock_lost(app: str, env: str, when: str) -> AppError:
    """The 409 a publish gets when its own lock lease expired or was revoked."""
    return AppError(
        ErrorCode.LOCK_LOST,
        f"the publish lock of {app}/{env} was lost {when} (its lease expired); retry",
    )


def epoch_of(cluster_id: int) -> str:
    """The fencing epoch of an etcd cluster."""
    return f"etcd-{cluster_id:x}"


@dataclass
class Hold:
    """One claim on a publish lock, from lease grant to release."""

    app: str
    env: str
    key: bytes
    lease_id: int
    ttl: float
    token: int = 0
    epoch: str = ""
    acquired_at: float = 0.0
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    keepalive: asyncio.Task[None] | None = None


class PublishLocks:
    """Publish locks per (app, env) for one replica."""

    def __init__(
        self,
        conn: EtcdConnection,
        keys: Keys,
        ttl: int,
        replica_id: str,
        *,
        fault_hold: float = 0.0,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.ttl = ttl
        self.replica_id = replica_id
        self.fault_hold = fault_hold
        self.wait_limit = max(30.0, 3.0 * ttl)
        self._local: dict[tuple[str, str], asyncio.Lock] = {}
        self._users: dict[tuple[str, str], int] = {}
        self._holds: dict[tuple[str, str], Hold] = {}

    def held(self, app: str, env: str) -> Hold | None:
        """This replica's current hold of an env's lock."""
        return self._holds.get((app, env))

    @contextlib.asynccontextmanager
    async def hold(self, app: str, env: str) -> AsyncIterator[Fence]:
        """Hold the lock; yields the fence to present to the store and to distribute()."""
        env_key = (app, env)
        local = self._local.setdefault(env_key, asyncio.Lock())
        self._users[env_key] = self._users.get(env_key, 0) + 1
        deadline = asyncio.get_running_loop().time() + self.wait_limit
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await local.acquire()
            except TimeoutError:
                raise _lock_timeout(app, env, self.wait_limit) from None
            try:
                hold = await self._acquire(app, env, deadline)
                self._holds[env_key] = hold
                try:
                    if self.fault_hold:
                        log.warning(
                            "fault injection: holding the lock of %s/%s for %.1f s",
                            app,
                            env,
                            self.fault_hold,
                        )
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(hold.lost.wait(), self.fault_hold)
                    yield Fence(hold.epoch, hold.token)
                finally:
                    self._holds.pop(env_key, None)
                    await self._release(hold)
            finally:
                local.release()
        finally:
            self._users[env_key] -= 1
            if not self._users[env_key]:
                del self._users[env_key]
                del self._local[env_key]

    async def _acquire(self, app: str, env: str, deadline: float) -> Hold:
        try:
            lease = await self.conn.call(lambda c: c.lease(self.ttl), within=ETCD_WITHIN)
        except EtcdUnavailable as exc:
            raise unavailable(exc) from None
        hold = Hold(app, env, self.keys.lock(app, env, lease.id), lease.id, float(lease.ttl))
        hold.keepalive = asyncio.create_task(
            self._keep_alive(hold), name=f"lock-keepalive-{app}/{env}"
        )
        try:
            await self._claim(hold)
            await self._wait_turn(hold, deadline)
        except BaseException:
            await self._release(hold)
            raise
        hold.acquired_at = time.time()
        log.debug("lock %s/%s acquired, token %d", app, env, hold.token)
        return hold

    async def _claim(self, hold: Hold) -> None:
        """Create the claim key on our lease; a retried create finds it already ours."""
        info = orjson.dumps({"replica": self.replica_id, "since": time.time()})

        async def create(c: aetcd.Client) -> tuple[bool, list[Any]]:
            t = c.transactions
            result: tuple[bool, list[Any]] = await c.transaction(
                compare=[t.create(hold.key) == 0],
                success=[t.put(hold.key, info, lease=hold.lease_id), t.get(hold.key)],
                failure=[t.get(hold.key)],
            )
            return result

        try:
            _, responses = await self.conn.call(create, within=ETCD_WITHIN)
        except EtcdUnavailable as exc:
            raise unavailable(exc) from None
        except aetcd.exceptions.ClientError as exc:
            if _lease_not_found(exc):
                raise lock_lost(hold.app, hold.env, "before it was claimed") from None
            raise
        found = responses[-1]
        if not found:
            raise lock_lost(hold.app, hold.env, "while claiming")
        claim = found[0][1]
        hold.token = int(claim.create_revision)
        hold.epoch = epoch_of(int(claim.header.cluster_id))

    async def _wait_turn(self, hold: Hold, deadline: float) -> None:
        """Wait until no claim older than ours is left."""
        directory = self.keys.lock_dir(hold.app, hold.env)
        loop = asyncio.get_running_loop()
        while True:
            try:
                claims = await self.conn.call(
                    lambda c: c.get_prefix(directory, sort_order="ascend", sort_target="create"),
                    within=ETCD_WITHIN,
                )
            except EtcdUnavailable as exc:
                raise unavailable(exc) from None
            # etcd answered: a claim it no longer has, or a lease our keep-alive gave up
            # (it could not renew in time, e.g. after a pause), is our lease lost, not etcd.
            if hold.lost.is_set() or not any(kv.key == hold.key for kv in claims):
                raise lock_lost(hold.app, hold.env, "while waiting for it")
            ahead = [kv for kv in claims if kv.create_revision < hold.token]
            if not ahead:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _lock_timeout(hold.app, hold.env, self.wait_limit)
            await self._wait_deleted(
                ahead[-1].key, claims.header.revision + 1, min(WAIT_POLL, remaining)
            )

    async def _wait_deleted(self, key: bytes, from_revision: int, wait: float) -> None:
        """Return when key is deleted or after `wait` s (the caller looks again either way)."""

        async def watch(c: aetcd.Client) -> None:
            with contextlib.suppress(
                aetcd.exceptions.WatchTimeoutError, aetcd.exceptions.RevisionCompactedError
            ):
                await c.watch_once(
                    key,
                    timeout=wait,
                    start_revision=from_revision,
                    kind=aetcd.rtypes.EventKind.DELETE,
                )

        with contextlib.suppress(EtcdUnavailable):
            await self.conn.call(watch, within=wait + 1.0, attempt=wait + 1.0)

    async def _keep_alive(self, hold: Hold) -> None:
        loop = asyncio.get_running_loop()
        expires = loop.time() + hold.ttl
        while True:
            await asyncio.sleep(hold.ttl / 3)
            sent = loop.time()
            if sent >= expires:
                break
            try:
                reply = await self.conn.call(
                    lambda c: c.refresh_lease(hold.lease_id), within=expires - sent
                )
            except EtcdUnavailable:
                continue
            except aetcd.exceptions.ClientError as exc:
                log.warning("lock lease of %s/%s: %s", hold.app, hold.env, exc)
                break
            if reply is None or reply.TTL <= 0:
                break
            expires = sent + reply.TTL
        hold.lost.set()
        log.warning(
            "the lock lease of %s/%s (token %d) expired; a newer holder may publish",
            hold.app,
            hold.env,
            hold.token,
        )

    async def _release(self, hold: Hold) -> None:
        if hold.keepalive is not None:
            hold.keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hold.keepalive
        try:
            # Revoking the lease deletes the claim; the next waiter sees the DELETE.
            await self.conn.call(lambda c: c.revoke_lease(hold.lease_id), within=2.0)
        except (EtcdUnavailable, aetcd.exceptions.ClientError) as exc:
            log.info(
                "could not revoke the lock lease of %s/%s (%s); it expires in %d s",
                hold.app,
                hold.env,
                exc,
                int(hold.ttl),
            )

    async def holders(self) -> list[dict[str, Any]]:
        """Every env whose lock is held, with its holder and how many wait."""
        claims = await self.conn.call(
            lambda c: c.get_prefix(self.keys.locks, sort_order="ascend", sort_target="create"),
            within=2.0,
        )
        by_env: dict[tuple[str, str], list[Any]] = {}
        for kv in claims:
            env_key = self.keys.env_of(kv.key, self.keys.locks)
            if env_key is not None:
                by_env.setdefault(env_key, []).append(kv)
        result = []
        for (app, env), kvs in sorted(by_env.items()):
            first = kvs[0]
            info = decode_json(first.value)
            result.append(
                {
                    "app": app,
                    "env": env,
                    "replica": info.get("replica"),
                    "since": info.get("since"),
                    "token": first.create_revision,
                    "waiting": len(kvs) - 1,
                }
            )
        return result


def _lease_not_found(error: aetcd.exceptions.ClientError) -> bool:
    """etcd refused a put on our lease because the lease no longer exists."""
    cause = error.__cause__
    return isinstance(cause, AioRpcError) and cause.code() == StatusCode.NOT_FOUND


def _lock_timeout(app: str, env: str, limit: float) -> AppError:
    return AppError(
        ErrorCode.LOCK_TIMEOUT,
        f"the publish lock of {app}/{env} was not free within {limit:.0f} s; retry",
    )
