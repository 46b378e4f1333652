"""One etcd connection that moves along a list of endpoints when a member fails.

aetcd's `Client` talks to one `host:port`. FACTS.md shows a gRPC multi-address target
(`ipv4:a:1,b:2`) as a workaround; we keep our own list instead, because:

- gRPC's pick_first only leaves an address whose TCP connection breaks. A member that is up
  but cut off from the quorum (a partition, a paused process) keeps the connection and every
  call on it times out or answers "no leader"; our list moves on after such an error too.
- the multi-address target takes IP literals only; a list takes host names.
- failing over is explicit: the watch and the lease keep-alives see their client close, make
  a new one on the next endpoint, and resume (the watch from its last revision).

Every client sends etcd's `hasleader` metadata (clientv3's WithRequireLeader), so a member
without a leader refuses at once and closes our watch rather than leaving it silently stalled.

TLS and users: aetcd 1.0's Client always opens an insecure channel and authenticates once, in
connect(); `LeaderClient` opens a TLS channel when [etcd] asks for it and authenticates on it.
A token lives as long as its client: when etcd calls it invalid (expired: `--auth-token-ttl`
of unused simple tokens, a JWT's lifetime) or stale (the auth store changed), the call fails
over and the next client authenticates afresh, as it does after any failover, so a member
that never issued or has forgotten our token is never asked to accept it. A watch etcd
refuses to create (its token no longer valid on the stream) fails instead of stalling.

A refusal (wrong password, unknown user, no permission on the prefix, a TLS handshake etcd or
we reject) is retried like an outage, so a replica keeps serving and comes back when the
cause is fixed, but EtcdUnavailable says `refused` so that start-up can fail loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.watcher
import grpc
from aetcd import rpc
from aetcd.rpc import AioRpcError

from server.config import EtcdSection

log = logging.getLogger(__name__)

T = TypeVar("T")

RPC_TIMEOUT = 2.0
_REQUIRE_LEADER = (("hasleader", "true"),)
_CHANNEL_OPTIONS = {"grpc.max_receive_message_length": 256 * 1024 * 1024}

# Errors after which another endpoint may answer: the member is gone, slow or leaderless.
TRANSIENT: tuple[type[BaseException], ...] = (
    aetcd.exceptions.ConnectionFailedError,
    aetcd.exceptions.ConnectionTimeoutError,
    aetcd.exceptions.WatchTimeoutError,
    aetcd.exceptions.InternalError,
    AioRpcError,
    TimeoutError,
    ConnectionError,
    # an expired or forgotten token: the next client authenticates again
    aetcd.exceptions.UnauthenticatedError,
)

# What gRPC says when the TLS handshake fails on either side (a certificate refused).
_TLS_FAILURES = ("handshake", "tsi_", "certificate", "ssl_error", "unwrap failed")


class EtcdRefused(aetcd.exceptions.ClientError):  # type: ignore[misc]
    """etcd answered and refused us: our credentials, permissions or certificate."""


class EtcdUnavailable(Exception):
    """No endpoint answered within the time allowed (refused: one refused us)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def refused(error: BaseException) -> bool:
    """True for an error that says etcd will not have us as configured, not that it is away."""
    if isinstance(error, EtcdRefused):
        return True
    text = str(error).lower()
    if isinstance(error, aetcd.exceptions.UnauthenticatedError):
        return "invalid auth token" not in text
    if isinstance(error, aetcd.exceptions.ConnectionFailedError | AioRpcError):
        return any(marker in text for marker in _TLS_FAILURES)
    if isinstance(error, aetcd.exceptions.ClientError):
        return "permission denied" in text or "authentication failed" in text
    return False


def _token_stale(error: BaseException) -> bool:
    # etcd refuses a token issued before the last change of users or roles; a new one works.
    return isinstance(error, aetcd.exceptions.ClientError) and "auth store is old" in str(error)


@dataclass(frozen=True)
class EtcdAccess:
    """How a client reaches etcd: TLS (the PEM contents read at start) and the user."""

    tls: bool = False
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: EtcdSection) -> EtcdAccess:
        """The [etcd] TLS files (read now: a restart picks up renewed ones) and user."""

        def read(path: str) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return cls(
            tls=config.tls,
            ca=read(config.ca_file),
            cert=read(config.cert_file),
            key=read(config.key_file),
            username=config.username or None,
            password=config.password or None,
        )

    def anonymous(self) -> EtcdAccess:
        """The same TLS without the user (health probes need no token)."""
        return replace(self, username=None, password=None)

    def channel(self, target: str) -> grpc.aio.Channel:
        """A gRPC channel to target, over TLS (without a CA: the system's roots) if asked."""
        options = list(_CHANNEL_OPTIONS.items())
        if not self.tls:
            return grpc.aio.insecure_channel(target, options=options)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )
        return grpc.aio.secure_channel(target, credentials, options=options)


class _Watcher(aetcd.watcher.Watcher):  # type: ignore[misc]
    """aetcd's watcher, which takes a watch etcd cancels for a live one; this one fails it."""

    async def _handle_response(self, response: Any) -> None:
        if response.canceled and not response.compact_revision:
            reason = response.cancel_reason or "etcd cancelled the watch"
            error: aetcd.exceptions.ClientError
            if "invalid auth token" in reason:  # forgotten: TRANSIENT, a new client signs in
                error = aetcd.exceptions.UnauthenticatedError(reason)
            elif "permission denied" in reason:
                error = EtcdRefused(reason)
            else:
                error = aetcd.exceptions.ClientError(reason)
            async with self._lock:
                if response.created:  # refused at creation (etcd sends created and canceled)
                    if self._new_callback is not None:
                        self._new_callback.error = error
                        self._new_callback_ready.notify_all()
                    return
                callback = self._callbacks.pop(response.watch_id, None)
            if callback is not None:
                await self._process_callback(callback, error)
            return
        await super()._handle_response(response)


class _NoWatcher:
    """aetcd's watcher once its client is closed (aetcd leaves None there).

    A failover closes a client under the calls still running on it; a `watch_once` among
    them cancels its watch on the way out, which on None failed with AttributeError (a 500
    on the publish that waited for the lock, seen in the fault soak).
    """

    async def add_callback(self, *args: Any, **kwargs: Any) -> Any:
        """A watch on a client closed since it connected: as if the member went away."""
        raise aetcd.exceptions.ConnectionFailedError("the etcd client was closed (failover)")

    async def cancel(self, watch_id: int) -> None:
        """Nothing to cancel: the stream went with the channel."""

    async def shutdown(self) -> None:
        """Nothing to shut down."""


class LeaderClient(aetcd.Client):  # type: ignore[misc]
    """An aetcd client over TLS or not, as its user, requiring the member to have a leader."""

    def __init__(
        self, host: str, port: int, timeout: float, access: EtcdAccess | None = None
    ) -> None:
        # TLS and the user stay ours: aetcd's connect() (replaced below) would open an
        # insecure channel; gRPC's 4 MiB message default is lifted in EtcdAccess.channel.
        super().__init__(host, port, timeout=timeout)
        self._access = access or EtcdAccess()
        self._connecting: asyncio.Task[None] | None = None

    def _init_channel_attrs(self) -> None:
        super()._init_channel_attrs()
        self._watcher: Any = _NoWatcher()

    async def connect(self) -> None:
        """Open the channel and authenticate once; concurrent callers share the attempt."""
        if self._connected.is_set():
            return
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
            # Its callers may all have timed out: the failure is theirs to see, not the loop's.
            self._connecting.add_done_callback(_retrieve)
        await asyncio.shield(self._connecting)

    async def _open(self) -> None:
        access = self._access
        channel = access.channel(f"{self._host}:{self._port}")
        metadata: tuple[tuple[str, str], ...] = _REQUIRE_LEADER
        try:
            if access.username is not None:
                request = rpc.AuthenticateRequest(name=access.username, password=access.password)
                try:
                    reply = await rpc.AuthStub(channel).Authenticate(request, timeout=self._timeout)
                except AioRpcError as exc:
                    if exc.code() in (
                        grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.PERMISSION_DENIED,
                    ):
                        raise EtcdRefused(
                            f"etcd refused user {access.username!r}: {exc.details()}"
                        ) from None
                    raise
                metadata = (("token", reply.token), *_REQUIRE_LEADER)
        except BaseException:
            await channel.close()
            raise
        # aetcd's calls send self.metadata; its watcher keeps its own copy.
        self.channel = channel
        self.metadata = metadata
        self.kvstub = rpc.KVStub(channel)
        self.clusterstub = rpc.ClusterStub(channel)
        self.leasestub = rpc.LeaseStub(channel)
        self.maintenancestub = rpc.MaintenanceStub(channel)
        self._watcher = _Watcher(rpc.WatchStub(channel), timeout=self._timeout, metadata=metadata)
        self._connected.set()

    async def close(self) -> None:
        """Close the channel (and an attempt to open it still under way)."""
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        await super().close()


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or 'https://host:port' as (host, port)."""
    host, _, port = endpoint.split("://", 1)[-1].rstrip("/").rpartition(":")
    return host, int(port)


class EtcdConnection:
    """The current client on one of the endpoints; call() fails over and retries."""

    def __init__(
        self, endpoints: tuple[str, ...] | list[str], access: EtcdAccess | None = None
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = [parse_endpoint(e) for e in endpoints]
        self.access = access or EtcdAccess()
        # Replicas start on different members so the load spreads.
        self._index = random.randrange(len(self.endpoints))  # noqa: S311 - not security
        self._client: LeaderClient | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._healthy = True
        self.failovers = 0

    @property
    def endpoint(self) -> str:
        """The endpoint in use."""
        host, port = self.endpoints[self._index]
        return f"{host}:{port}"

    def client(self) -> aetcd.Client:
        """The client on the current endpoint (it connects on first use)."""
        if self._closed:
            raise EtcdUnavailable("the etcd connection is closed")
        if self._client is None:
            host, port = self.endpoints[self._index]
            self._client = LeaderClient(host, port, timeout=RPC_TIMEOUT, access=self.access)
        return self._client

    def failed(self, client: aetcd.Client, error: BaseException) -> None:
        """Move to the next endpoint if `client` is still the current one."""
        if client is not self._client:
            return
        old = self.endpoint
        self._index = (self._index + 1) % len(self.endpoints)
        self._client = None
        self.failovers += 1
        # One warning per outage (an error when etcd refuses us); the rest only at debug level.
        log.log(
            (logging.ERROR if refused(error) else logging.WARNING)
            if self._healthy
            else logging.DEBUG,
            "etcd %s failed (%s); moving to %s",
            old,
            _describe(error),
            self.endpoint,
        )
        self._healthy = False
        task = asyncio.get_running_loop().create_task(_close_quietly(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def call(
        self,
        op: Callable[[aetcd.Client], Awaitable[T]],
        *,
        within: float,
        attempt: float = RPC_TIMEOUT + 0.5,
    ) -> T:
        """Run op on the current client; on a transient error fail over and retry until within."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        tried = 0
        refusal: BaseException | None = None
        while True:
            client = self.client()
            remaining = deadline - loop.time()
            try:
                async with asyncio.timeout(max(0.05, min(attempt, remaining))):
                    result = await op(client)
                if not self._healthy:
                    self._healthy = True
                    log.info("etcd answers again on %s", self.endpoint)
                return result
            except TRANSIENT as exc:
                self.failed(client, exc)
                error: BaseException = exc
            except aetcd.exceptions.ClientError as exc:
                if not (refused(exc) or _token_stale(exc)):
                    raise
                self.failed(client, exc)
                error = exc
            except asyncio.CancelledError as exc:
                if cancelling():
                    raise
                # Not us: grpc cancels the calls of a channel that a failover closed.
                error = exc
            if refused(error):
                refusal = error
            tried += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                if refusal is not None:
                    raise EtcdUnavailable(f"refused: {_describe(refusal)}", refused=True) from error
                raise EtcdUnavailable(_describe(error)) from error
            # Each endpoint once at once; then back off so a dead cluster is not hammered.
            if tried >= len(self.endpoints):
                await asyncio.sleep(min(0.25 * (tried - len(self.endpoints) + 1), 1.0, remaining))

    async def close(self) -> None:
        """Close the client and wait for clients being closed."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        # so that nothing this connection started outlives close()
        await _grpc_settled(0.2)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def cancelling() -> bool:
    """True when the current task is being cancelled (not merely seeing a CancelledError)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _close_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await client.close()


async def _grpc_settled(within: float) -> None:
    """Wait (bounded) for grpc's per-call status tasks, which end just after a channel closes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if not any(not t.done() and _is_grpc(t) for t in asyncio.all_tasks()):
            return
        await asyncio.sleep(0.005)


def _is_grpc(task: asyncio.Task[Any]) -> bool:
    return getattr(task.get_coro(), "__qualname__", "").startswith("_AioCall.")
