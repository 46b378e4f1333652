"""The connection guard in front of a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from server.connections import ConnectionGuard, raise_open_files_limit
from tests.client.helpers import wait_until

IDLE_SECONDS = 1.0


class Served:
    """A tiny app behind the guard: /healthz, and /ws that pushes whatever /push says."""

    def __init__(self, guard: ConnectionGuard, port: int) -> None:
        self.guard = guard
        self.port = port
        self.sockets: list[web.WebSocketResponse] = []
        self.all_subscribed = asyncio.Event()

    async def push(self, text: str) -> None:
        for ws in self.sockets:
            await ws.send_str(text)


@pytest.fixture
async def served(unused_tcp_port: int) -> AsyncIterator[Served]:
    guard = ConnectionGuard(limit=4, first_request_timeout=IDLE_SECONDS)
    state = Served(guard, unused_tcp_port)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ws(request: web.Request) -> web.WebSocketResponse:
        response = web.WebSocketResponse()
        await response.prepare(request)
        state.sockets.append(response)
        if len(state.sockets) == guard.limit:
            state.all_subscribed.set()
        async for _ in response:
            pass
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ws", ws)
    runner = web.AppRunner(app, keepalive_timeout=75.0)
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        guard.protocol_factory(runner.server), "127.0.0.1", unused_tcp_port
    )
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        await runner.cleanup()


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def _healthz(port: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=5)
        ) as answer,
    ):
        return answer.status


async def test_an_idle_and_a_slow_header_connection_are_closed_after_the_idle_timeout(
    served: Served,
) -> None:
    idle_reader, idle = await _open(served.port)
    slow_reader, slow = await _open(served.port)
    slow.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await slow.drain()
    assert await _closed_within(idle_reader, IDLE_SECONDS + 3)
    assert await _closed_within(slow_reader, IDLE_SECONDS + 3)
    for writer in (idle, slow):
        writer.close()


async def test_at_the_cap_a_real_request_evicts_the_oldest_idle_connection(
    served: Served,
) -> None:
    idle = [await _open(served.port) for _ in range(served.guard.limit)]
    await wait_until(lambda: served.guard.open == served.guard.limit, "the guard to count them")

    assert await _healthz(served.port) == 200

    assert await _closed_within(idle[0][0], 2.0)
    assert served.guard.evicted >= 1
    for _, writer in idle:
        writer.close()


async def test_subscribers_keep_their_sockets_at_the_cap_and_newcomers_are_refused(
    served: Served,
) -> None:
    async with aiohttp.ClientSession() as session:
        sockets = [
            await session.ws_connect(f"http://127.0.0.1:{served.port}/ws")
            for _ in range(served.guard.limit)
        ]
        async with asyncio.timeout(5):
            await served.all_subscribed.wait()
        with pytest.raises(aiohttp.ClientError):
            await _healthz(served.port)
        assert served.guard.refused >= 1

        await served.push("still here")

        for ws in sockets:
            message = await ws.receive(timeout=5)
            assert message.data == "still here"
            await ws.close()


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        before, now = raise_open_files_limit()
        assert before == min(1024, hard)
        assert now == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_connection_that_made_a_request_outlives_the_first_request_deadline(
    served: Served,
) -> None:
    reader, writer = await _open(served.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(2):
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        # Past the first-request deadline: a keep-alive connection is not held to it.
        assert not await _closed_within(reader, IDLE_SECONDS + 1.0)
    writer.close()
    await writer.wait_closed()
