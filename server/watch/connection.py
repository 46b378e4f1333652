"""One WebSocket subscriber: its subscriptions, a bounded send queue and a writer task."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import orjson
from aiohttp import WSCloseCode, web

from server.domain.published import EnvKey
from server.domain.scopes import Principal

log = logging.getLogger(__name__)

_ids = itertools.count(1)

CLOSE_TRY_AGAIN_LATER = 1013  # the contract's code for a subscriber too slow to drain


class WatchConnection:
    """A subscriber socket; frames go out in queue order, one writer task per socket."""

    def __init__(self, ws: web.WebSocketResponse, principal: Principal, queue_size: int) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.principal = principal
        self.subscriptions: dict[EnvKey, int] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Begin draining the queue."""
        self._writer = asyncio.create_task(self._drain(), name=f"ws-writer-{self.id}")

    async def stop(self) -> None:
        """Cancel the writer and wait for it."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    @property
    def closing(self) -> bool:
        """True once a close has been requested."""
        return self._closing

    def offer_release(self, key: EnvKey, version: int, frame: str) -> None:
        """Queue a release frame if it is newer than what this socket was sent for key."""
        last = self.subscriptions.get(key)
        if last is None or version <= last or self._closing:
            return
        self.subscriptions[key] = version
        self._put(frame)

    def send_error(self, code: str, message: str) -> None:
        """Queue an error message; the socket stays open."""
        self._put(orjson.dumps({"type": "error", "code": code, "message": message}).decode())

    def send_message(self, message: dict[str, Any]) -> None:
        """Queue any message."""
        self._put(orjson.dumps(message).decode())

    def _put(self, frame: str) -> None:
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
        asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=reason.encode()[:120])

    async def _drain(self) -> None:
        try:
            while True:
                frame = await self._queue.get()
                await self.ws.send_str(frame)
        except (ConnectionResetError, RuntimeError) as exc:
            log.debug("ws %d writer stopped: %s", self.id, exc)
