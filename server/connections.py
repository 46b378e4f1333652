"""Open connections under a cap, and the open-files limit raised to what the system allows.

aiohttp closes a connection that sends no complete request within its keep-alive timeout,
but holds any number of them until then: 20,000 idle sockets exhaust the file descriptors
and nobody, not even /healthz, gets in. The guard counts connections; at the cap a new one
evicts the oldest connection that has not yet sent a whole request head (an idle or
slow-header socket), so that a client with a real request still gets in while subscribers
and keep-alive clients keep their connections. With nothing to evict it is refused.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# A request head ends with an empty line; clients that end lines with a bare LF send this.
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


class ConnectionGuard:
    """Counts open connections; at `limit` a new one evicts the oldest unproven connection.

    A connection that has not sent a whole request head within `first_request_timeout`
    seconds is closed (idle and slow-header sockets); after its first request, aiohttp's
    keep-alive timeout applies as usual.
    """

    def __init__(self, limit: int, first_request_timeout: float) -> None:
        self.limit = limit
        self.first_request_timeout = first_request_timeout
        self.open = 0
        self.evicted = 0
        self.refused = 0
        # Insertion-ordered: the first is the oldest connection that has sent no request.
        self._unproven: dict[GuardedProtocol, None] = {}

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        """Wrap a protocol factory (aiohttp's web.Server) so each connection is counted."""
        return lambda: GuardedProtocol(self, inner())

    def _admit(self, connection: GuardedProtocol) -> bool:
        if self.open >= self.limit:
            if not self._unproven:
                self.refused += 1
                if self.refused == 1 or self.refused % 1000 == 0:
                    log.warning(
                        "%d open connections (the cap): refused %d", self.open, self.refused
                    )
                return False
            oldest = next(iter(self._unproven))
            del self._unproven[oldest]
            oldest.abort()
            self.evicted += 1
        self.open += 1
        self._unproven[connection] = None
        return True

    def _proven(self, connection: GuardedProtocol) -> None:
        self._unproven.pop(connection, None)

    def _closed(self, connection: GuardedProtocol) -> None:
        self.open -= 1
        self._unproven.pop(connection, None)


class GuardedProtocol(asyncio.Protocol):
    """Passes everything to the wrapped protocol; tells the guard what the connection does."""

    __slots__ = ("_admitted", "_deadline", "_guard", "_inner", "_tail", "_transport")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None
        self._admitted = False
        self._deadline: asyncio.TimerHandle | None = None
        # The last bytes seen while no request head has ended (None once one has).
        self._tail: bytes | None = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if not self._guard._admit(self):
            self._tail = None
            self.abort()
            return
        self._admitted = True
        self._deadline = asyncio.get_running_loop().call_later(
            self._guard.first_request_timeout, self.abort
        )
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._tail is not None:
            seen = self._tail + data
            if any(end in seen for end in _HEAD_ENDS):
                self._tail = None
                self._guard._proven(self)
                if self._deadline is not None:
                    self._deadline.cancel()
                    self._deadline = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._guard._closed(self)
        self._inner.connection_lost(exc)

    def abort(self) -> None:
        """Close at once, unsent data dropped (for evicted and refused connections)."""
        if self._transport is not None and not self._transport.is_closing():
            abort = getattr(self._transport, "abort", self._transport.close)
            abort()


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one; returns (before, now), and logs it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
            return soft, soft
    log.info("open-files limit %d (was %d)", hard, soft)
    return soft, hard
