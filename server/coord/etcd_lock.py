"""The publish lock of one (app, env) on etcd: a session lease, a claim key and a fencing token.

Modelled on etcd's concurrency.Session and concurrency.Mutex, with the two things aetcd's
`Lock` lacks:

- **Keep-alive.** A replica holds one session lease (TTL `lock_ttl`, granted on its first
  publish) and refreshes it every TTL/3; every claim it makes is on that lease, so a publish
  costs no lease grant and no revoke, only its claim (released by distribute's transaction,
  which deletes it with the record's write; by a delete of its own otherwise). A replica
  that dies or stops refreshing (kill -9, a GC pause, SIGSTOP, a partition) loses the session;
  etcd deletes its claims and the next waiter proceeds at most `lock_ttl` (+ etcd's 0.5 s
  expiry tick) later. A lost session is never reused: the next publish grants a new one.
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
  holder that lost its lease before writing. (A session found gone when claiming is not a
  lost lock: the claim is made once more on a new session.)
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
import aetcd.utils
import orjson
from aetcd.rpc import AioRpcError, StatusCode

from server.coord.etcd_batch import TxnBatch
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
# Builds transaction operations and compares (no client needed until they are sent).
TXN = aetcd.client.Transactions()


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
    """One claim on a publish lock, from claim to release."""

    app: str
    env: str
    key: bytes
    lease_id: int
    ttl: float
    token: int = 0
    epoch: str = ""
    acquired_at: float = 0.0
    # Set when the lease the claim is on is gone (its session's event).
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when the claim was deleted with the release record (distribute's transaction):
    # the lock is free already and needs no delete of its own.
    released: bool = False


@dataclass
class _Session:
    """This replica's lease for its claims, kept alive until lost or closed."""

    lease_id: int
    ttl: float
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
        batch: TxnBatch | None = None,
        fault_hold: float = 0.0,
    ) -> None:
        self.conn = conn
        # Claims go with this replica's other concurrent transactions (one gRPC call).
        self.batch = batch or TxnBatch(conn, ETCD_WITHIN)
        self.keys = keys
        self.ttl = ttl
        self.replica_id = replica_id
        self.fault_hold = fault_hold
        self.wait_limit = max(30.0, 3.0 * ttl)
        self._local: dict[tuple[str, str], asyncio.Lock] = {}
        self._users: dict[tuple[str, str], int] = {}
        self._holds: dict[tuple[str, str], Hold] = {}
        self._session: _Session | None = None
        self._granting: asyncio.Lock = asyncio.Lock()

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
                    if not hold.released:
                        await self._release(hold)
            finally:
                local.release()
        finally:
            self._users[env_key] -= 1
            if not self._users[env_key]:
                del self._users[env_key]
                del self._local[env_key]

    async def close(self) -> None:
        """End the session: its claims go at once, not a TTL later (a clean shutdown)."""
        session, self._session = self._session, None
        if session is not None:
            await self._end(session, revoke=True)

    async def _current_session(self) -> _Session:
        """The live session, granted when there is none (one grant at a time)."""
        async with self._granting:
            session = self._session
            if session is not None and not session.lost.is_set():
                return session
            try:
                lease = await self.conn.call(lambda c: c.lease(self.ttl), within=ETCD_WITHIN)
            except EtcdUnavailable as exc:
                raise unavailable(exc) from None
            session = _Session(int(lease.id), float(lease.ttl))
            session.keepalive = asyncio.create_task(
                self._keep_alive(session), name="lock-session-keepalive"
            )
            self._session = session
            log.debug("lock session lease %x granted", session.lease_id)
            return session

    def _retire(self, session: _Session) -> None:
        """Stop using a session whose lease is, or may be, gone; the next claim gets a new one."""
        if self._session is session:
            self._session = None
        session.lost.set()
        if session.keepalive is not None:
            session.keepalive.cancel()

    async def _end(self, session: _Session, *, revoke: bool) -> None:
        self._retire(session)
        if session.keepalive is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await session.keepalive
        if not revoke:
            return
        try:
            # Revoking the lease deletes every claim on it; waiters see the DELETEs.
            await self.conn.call(lambda c: c.revoke_lease(session.lease_id), within=2.0)
        except (EtcdUnavailable, aetcd.exceptions.ClientError) as exc:
            log.info(
                "could not revoke the lock session lease (%s); it expires in %d s",
                exc,
                int(session.ttl),
            )

    def _hold_on(self, session: _Session, app: str, env: str) -> Hold:
        key = self.keys.lock(app, env, session.lease_id)
        return Hold(app, env, key, session.lease_id, session.ttl, lost=session.lost)

    async def _acquire(self, app: str, env: str, deadline: float) -> Hold:
        session = await self._current_session()
        hold = self._hold_on(session, app, env)
        try:
            claims = await self._claim(hold)
        except AppError as exc:
            if exc.error is not ErrorCode.LOCK_LOST:
                raise
            # The session's lease was gone before this claim (it expired while idle, or was
            # revoked): nothing was held on it; claim once more on a new session.
            self._retire(session)
            session = await self._current_session()
            hold = self._hold_on(session, app, env)
            claims = await self._claim(hold)
        try:
            await self._wait_turn(hold, deadline, claims)
        except BaseException as exc:
            if isinstance(exc, AppError) and exc.error is ErrorCode.LOCK_LOST:
                self._retire(session)
            await self._release(hold)
            raise
        hold.acquired_at = time.time()
        log.debug("lock %s/%s acquired, token %d", app, env, hold.token)
        return hold

    async def _claim(self, hold: Hold) -> list[Any]:
        """Create the claim key on our lease; a retried create finds it already ours. Returns
        the env's claims as etcd had them then, oldest first (ours among them)."""
        info = orjson.dumps({"replica": self.replica_id, "since": time.time()})
        directory = self.keys.lock_dir(hold.app, hold.env)
        claims_range = (directory, aetcd.utils.prefix_range_end(directory))

        t = TXN
        try:
            _, responses = await self.batch.run(
                compare=[t.create(hold.key) == 0],
                success=[t.put(hold.key, info, lease=hold.lease_id), t.get(*claims_range)],
                failure=[t.get(*claims_range)],
                keys=frozenset({hold.key}),
                size=len(info),
            )
        except EtcdUnavailable as exc:
            raise unavailable(exc) from None
        except aetcd.exceptions.ClientError as exc:
            if _lease_not_found(exc):
                raise lock_lost(hold.app, hold.env, "before it was claimed") from None
            raise
        claims = sorted((meta for _, meta in responses[-1]), key=lambda m: m.create_revision)
        ours = [meta for meta in claims if meta.key == hold.key]
        if not ours:
            raise lock_lost(hold.app, hold.env, "while claiming")
        hold.token = int(ours[0].create_revision)
        hold.epoch = epoch_of(int(ours[0].header.cluster_id))
        return claims

    async def _wait_turn(self, hold: Hold, deadline: float, claimed: list[Any]) -> None:
        """Wait until no claim older than ours is left; `claimed` is what the claim saw."""
        directory = self.keys.lock_dir(hold.app, hold.env)
        loop = asyncio.get_running_loop()
        claims: list[Any] | None = claimed
        # The revision the claims were read at (the claim's transaction's, at first).
        read_at = max(int(kv.header.revision) for kv in claimed)
        while True:
            if claims is None:
                try:
                    found = await self.conn.call(
                        lambda c: c.get_prefix(
                            directory, sort_order="ascend", sort_target="create"
                        ),
                        within=ETCD_WITHIN,
                    )
                except EtcdUnavailable as exc:
                    raise unavailable(exc) from None
                claims = list(found)
                read_at = int(found.header.revision)
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
            claims = None
            await self._wait_deleted(ahead[-1].key, read_at + 1, min(WAIT_POLL, remaining))

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

    async def _keep_alive(self, session: _Session) -> None:
        loop = asyncio.get_running_loop()
        expires = loop.time() + session.ttl
        while True:
            await asyncio.sleep(session.ttl / 3)
            sent = loop.time()
            if sent >= expires:
                break
            try:
                reply = await self.conn.call(
                    lambda c: c.refresh_lease(session.lease_id), within=expires - sent
                )
            except EtcdUnavailable:
                continue
            except aetcd.exceptions.ClientError as exc:
                log.warning("lock session lease: %s", exc)
                break
            if reply is None or reply.TTL <= 0:
                break
            expires = sent + reply.TTL
        if self._session is session:
            self._session = None
        session.lost.set()
        held = [f"{h.app}/{h.env} (token {h.token})" for h in self._holds.values()]
        log.warning(
            "the lock session lease expired%s; a newer holder may publish",
            f" holding {', '.join(held)}" if held else "",
        )

    async def _release(self, hold: Hold) -> None:
        try:
            # Deleting the claim lets the next waiter go (it watches the DELETE).
            await self.conn.call(lambda c: c.delete(hold.key), within=2.0)
        except (EtcdUnavailable, aetcd.exceptions.ClientError) as exc:
            # A claim left on a live session would block the env for as long as the session
            # lives: end the session, so the claim goes with its lease (at most a TTL later).
            log.info(
                "could not delete the lock claim of %s/%s (%s); ending the session, its "
                "claims expire in %d s",
                hold.app,
                hold.env,
                exc,
                int(hold.ttl),
            )
            session = self._session
            if session is not None and session.lease_id == hold.lease_id:
                await self._end(session, revoke=True)

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
