"""One WebSocket subscriber: its subscriptions, a bounded send queue and a writer task."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from aiohttp import WSCloseCode, web

from server.domain.scopes import Principal
from server.errors import ErrorCode
from server.instances import Instance
from server.published import EnvKey
from server.watch.messages import ReleaseMessage, error_message

log = logging.getLogger(__name__)

_ids = itertools.count(1)

CLOSE_TRY_AGAIN_LATER = 1013  # the contract's code for a subscriber too slow to drain
PING_FRAME = b"\x89\x00"  # an empty server ping (RFC 6455 5.5.2)
MISSED_PONGS_ALLOWED = 1  # the contract: a peer that misses two pings is closed
CLOSE_INTERNAL_ERROR = WSCloseCode.INTERNAL_ERROR  # 1011: the server failed, not the peer


class WatchConnection:
    """A subscriber socket; frames go out in order, through at most one writer task.

    When the socket is idle (nothing queued, nothing being sent, the transport's buffer
    empty) a release goes straight to the transport as a frame built once per broadcast;
    otherwise it waits in the bounded queue, which is what overflows into 1013. The queue
    and its writer task are made on first use: most sockets never need them.
    """

    # Slots: no instance dict for each of tens of thousands of idle subscribers.
    __slots__ = (
        "_closer",
        "_closing",
        "_queue",
        "_queue_size",
        "_sending",
        "_stopped",
        "_transport",
        "_unanswered_pings",
        "_writer",
        "address",
        "id",
        "instances",
        "principal",
        "revealed",
        "subscriptions",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        principal: Principal,
        queue_size: int,
        transport: asyncio.Transport | None = None,
        address: str | None = None,
    ) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.principal = principal
        self.address = address
        # The subscriptions of an instance that named itself: its record in the registry.
        self.instances: dict[EnvKey, Instance] = {}
        # The subscriptions whose secret values this principal may see in clear: a tuple, as
        # a socket has a few subscriptions and an empty set alone is 216 bytes.
        self.revealed: tuple[EnvKey, ...] = ()
        self.subscriptions: dict[EnvKey, int] = {}
        self._transport = transport
        self._queue_size = queue_size
        self._queue: asyncio.Queue[str] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._sending = False
        self._closing = False
        self._closer: asyncio.Task[None] | None = None
        self._stopped = False
        self._unanswered_pings = 0

    def start(self) -> None:
        """Allow sending (the writer task starts with the first queued frame)."""
        self._stopped = False

    async def stop(self) -> None:
        """Cancel the writer and wait for it and for a close in progress."""
        self._stopped = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._closer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._closer

    def pong_received(self) -> None:
        """The peer answered: it is alive."""
        self._unanswered_pings = 0

    def ping(self) -> bool:
        """Send a ping; False when the peer already missed two (the caller closes it).

        A frame is always whole in the transport between awaits, so the ping can go
        straight after whatever is buffered.
        """
        if self._unanswered_pings > MISSED_PONGS_ALLOWED:
            return False
        transport = self._transport
        if transport is not None and not transport.is_closing() and not self._closing:
            self._unanswered_pings += 1
            transport.write(PING_FRAME)
        return True

    def reveal(self, key: EnvKey, shown: bool) -> None:
        """Whether the secret values of subscription key go to this socket in clear."""
        if shown and key not in self.revealed:
            self.revealed = (*self.revealed, key)
        elif not shown and key in self.revealed:
            self.revealed = tuple(k for k in self.revealed if k != key)

    @property
    def closing(self) -> bool:
        """True once a close has been requested."""
        return self._closing

    def offer_release(self, key: EnvKey, message: ReleaseMessage) -> None:
        """Send a release if it is newer than what this socket was sent for key.

        An idle socket gets the message's prebuilt frame written straight to its transport.
        """
        last = self.subscriptions.get(key)
        version = message.version
        if last is None or version <= last or self._closing:
            return
        self.subscriptions[key] = version
        record = self.instances.get(key)
        if record is not None:
            # The hub tells the registry once per broadcast, not once per socket.
            record.delivered_version = version
        transport = self._transport
        if (
            transport is not None
            and not self._sending
            and (self._queue is None or self._queue.empty())
            and transport.get_write_buffer_size() == 0
            and not transport.is_closing()
            and not self.ws.closed
        ):
            transport.write(message.wire)
            return
        self._put(message.text)

    def send_error(self, error: ErrorCode, message: str) -> None:
        """Queue an error message; the socket stays open."""
        self._put(error_message(error, message))

    def send_text(self, text: str) -> None:
        """Queue a message already encoded (one built once for many sockets)."""
        self._put(text)

    def _put(self, frame: str) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self._queue_size)
        if self._writer is None and not self._stopped:
            self._writer = asyncio.create_task(
                self._drain(self._queue), name=f"ws-writer-{self.id}"
            )
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("ws %d too slow (queue full); closing with 1013", self.id)
            self.close(CLOSE_TRY_AGAIN_LATER, "too slow: resubscribe with after=<last version>")

    def close(self, code: int = WSCloseCode.OK, reason: str = "") -> None:
        """Close the socket from outside its handler (revocation, overflow)."""
        if self._closing:
            return
        self._closing = True
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=reason.encode()[:120])

    async def _drain(self, queue: asyncio.Queue[str]) -> None:
        try:
            while True:
                frame = await queue.get()
                self._sending = True
                await self.ws.send_str(frame)
                self._sending = False
        except (ConnectionResetError, RuntimeError) as exc:
            log.debug("ws %d writer stopped: %s", self.id, exc)
        except Exception:
            log.exception("ws %d writer failed; closing with 1011", self.id)
            self.close(CLOSE_INTERNAL_ERROR, f"internal error (connection {self.id})")
