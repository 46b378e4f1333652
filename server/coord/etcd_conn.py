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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
from aetcd.rpc import AioRpcError

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
)


class EtcdUnavailable(Exception):
    """No endpoint answered within the time allowed."""


class LeaderClient(aetcd.Client):  # type: ignore[misc]
    """An aetcd client whose requests and watches require the member to have a leader."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        # gRPC's 4 MiB default would refuse reading a large prefix in one range.
        super().__init__(host, port, timeout=timeout, options=_CHANNEL_OPTIONS)

    async def connect(self) -> None:
        await super().connect()
        # aetcd sends self.metadata with every call; its watcher keeps its own copy.
        if getattr(self, "metadata", None) is None:
            setattr(self, "metadata", _REQUIRE_LEADER)  # noqa: B010
            watcher = getattr(self, "_watcher", None)
            if watcher is not None:
                watcher._metadata = _REQUIRE_LEADER


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """'host:port' (or '[v6]:port') as (host, port)."""
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


class EtcdConnection:
    """The current client on one of the endpoints; call() fails over and retries."""

    def __init__(self, endpoints: tuple[str, ...] | list[str]) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = [parse_endpoint(e) for e in endpoints]
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
            self._client = LeaderClient(host, port, timeout=RPC_TIMEOUT)
        return self._client

    def failed(self, client: aetcd.Client, error: BaseException) -> None:
        """Move to the next endpoint if `client` is still the current one."""
        if client is not self._client:
            return
        old = self.endpoint
        self._index = (self._index + 1) % len(self.endpoints)
        self._client = None
        self.failovers += 1
        # One warning per outage; the rest of the retries only at debug level.
        log.log(
            logging.WARNING if self._healthy else logging.DEBUG,
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
            except asyncio.CancelledError as exc:
                if cancelling():
                    raise
                # Not us: grpc cancels the calls of a channel that a failover closed.
                error = exc
            tried += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
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
