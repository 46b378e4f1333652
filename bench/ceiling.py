"""The ceilings: what bare aiohttp does on this machine, measured by the same load generators.

`python -m bench.ceiling PORT BODY_FILE` serves, under uvloop, with nothing else in the way
(no middleware, no auth, no log line, no metrics):
- `GET /read`: the bytes of BODY_FILE, from memory, as JSON (the read ceiling);
- `GET /watch?…`: a WebSocket that gets `{"type":"release","version":0,…}` on connect;
- `POST /broadcast?version=N`: one prebuilt text frame `{"type":"release","version":N,…}`
  written to every socket's transport (the push ceiling), answered once all are written;
- `GET /api/v1/apps/{app}/envs/{env}/config[?after=V&wait=S]`: the body with its version,
  at once, or once a version newer than V is published (the long-poll ceiling: each waiter
  wakes on one asyncio.Event and returns the prebuilt bytes), 304 after S seconds;
- `POST /publish`: the next version, its body built once, every waiter woken.

configcenter's figures are printed as ratios to these: how close each is to the physical
limit of one aiohttp process here.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from devservices.process import LOOPBACK, Process, free_port, http_request, wait_until

_TRANSPORTS = web.AppKey("transports", set[asyncio.Transport])
_BODY = web.AppKey("body", bytes)


class _Published:
    """The long-poll ceiling's one env: its version, that version's bytes, and the event
    its waiters wait on (replaced by each publish)."""

    def __init__(self, body: bytes) -> None:
        self.template = json.loads(body)
        self.version = 0
        self.body = b""
        self.changed = asyncio.Event()
        self.publish()

    def publish(self) -> None:
        self.version += 1
        self.body = json.dumps({**self.template, "version": self.version}).encode()
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


_PUBLISHED = web.AppKey("published", _Published)


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final WebSocket text frame (server to client, RFC 6455 5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def release_message(body: bytes, version: int) -> bytes:
    """A release message of the body's size, as the hub sends one."""
    return b'{"type":"release","version":%d,' % version + body.lstrip(b"{")


async def read(request: web.Request) -> web.Response:
    """The read ceiling."""
    return web.Response(body=request.app[_BODY], content_type="application/json")


async def watch(request: web.Request) -> web.WebSocketResponse:
    """A subscriber: the current message, then whatever a broadcast writes."""
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    await ws.send_str(release_message(request.app[_BODY], 0).decode())
    transport = request.transport
    assert transport is not None
    transports = request.app[_TRANSPORTS]
    transports.add(transport)
    try:
        async for _ in ws:
            pass
    finally:
        transports.discard(transport)
    return ws


async def broadcast(request: web.Request) -> web.Response:
    """The push ceiling: one frame built once, written to every socket's transport."""
    version = int(request.query["version"])
    frame = text_frame(release_message(request.app[_BODY], version))
    sent = 0
    for transport in request.app[_TRANSPORTS]:
        if not transport.is_closing():
            transport.write(frame)
            sent += 1
    return web.json_response({"version": version, "sent": sent}, status=201)


async def poll(request: web.Request) -> web.Response:
    """The long-poll ceiling: the current bytes, or the next version's once published."""
    published = request.app[_PUBLISHED]
    after = request.query.get("after")
    if after is not None and published.version <= int(after):
        changed = published.changed
        try:
            async with asyncio.timeout(float(request.query.get("wait", "30"))):
                await changed.wait()
        except TimeoutError:
            return web.Response(status=304)
    return web.Response(body=published.body, content_type="application/json")


async def publish(request: web.Request) -> web.Response:
    """The next version: built once, every waiter woken."""
    published = request.app[_PUBLISHED]
    published.publish()
    return web.json_response({"version": published.version}, status=201)


async def _start_published(app: web.Application) -> None:
    # Its Event belongs to the running loop.
    app[_PUBLISHED] = _Published(app[_BODY])


def make_app(body: bytes) -> web.Application:
    """The ceiling's app."""
    app = web.Application()
    app[_BODY] = body
    app[_TRANSPORTS] = set()
    app.on_startup.append(_start_published)
    app.router.add_get("/read", read)
    app.router.add_get("/watch", watch)
    app.router.add_post("/broadcast", broadcast)
    app.router.add_get("/api/v1/apps/{app}/envs/{env}/config", poll)
    app.router.add_post("/publish", publish)
    return app


class CeilingServer:
    """The ceiling in a process of its own, on a free loopback port, for one benchmark run."""

    def __init__(self, work_dir: Path, body: bytes) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        body_file = work_dir / "body.json"
        body_file.write_bytes(body)
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._process = Process(
            "ceiling",
            [sys.executable, "-m", "bench.ceiling", str(self.port), str(body_file)],
            work_dir / "ceiling.log",
            cwd=Path(__file__).resolve().parent.parent,
        )

    def start(self) -> CeilingServer:
        """Start it and wait until it answers."""
        self._process.start()

        def answers() -> bool:
            try:
                return http_request("GET", self.port, "/read")[0] == 200
            except OSError:
                return False

        wait_until("ceiling", answers, [self._process], 30.0)
        return self

    @property
    def pid(self) -> int:
        """Its pid (for CPU and memory readings)."""
        pid = self._process.pid
        assert pid is not None
        return pid

    def stop(self) -> None:
        """Stop it."""
        self._process.stop()


def ceiling_read(ceiling: CeilingServer, *, seconds: float, connections: int) -> dict[str, Any]:
    """wrk on the read ceiling, as on GET …/config."""
    from bench.read import run_wrk

    result = run_wrk(
        f"{ceiling.url}/read",
        seconds=seconds,
        connections=connections,
        server_pids=[ceiling.pid],
    )
    if result["socket_errors"] or result["bad_status"]:
        raise RuntimeError(f"read ceiling had errors: {result}")
    return result


async def ceiling_push(
    ceiling: CeilingServer,
    count: int,
    *,
    rounds: int,
    per_process: int,
    connect_timeout: float,
    delivery_timeout: float,
) -> dict[str, Any]:
    """The push ceiling: `count` lean subscribers (the same client as configcenter's), one
    prebuilt frame broadcast per round; with the ceiling's RSS per idle subscriber."""
    import aiohttp

    from bench.push import (
        Published,
        SubscriberFleet,
        SubscriberJob,
        plan_jobs,
        process_count,
        run_push,
        source_ips,
    )

    ips = source_ips(process_count(count, per_process))
    jobs = plan_jobs(
        "ws",
        count,
        per_process,
        lambda i, n: SubscriberJob(
            kind="lean",
            count=n,
            timeout=connect_timeout + rounds * (delivery_timeout + 1),
            urls=(f"{ceiling.url}/watch?ceiling=1",),
            source_ip=ips[i],
        ),
    )
    async with aiohttp.ClientSession(ceiling.url) as session:

        async def publish(round_no: int) -> Published:
            stamp = time.monotonic()
            async with session.post(f"/broadcast?version={round_no + 1}") as response:
                body = await response.json()
            if body["sent"] != count:
                raise RuntimeError(f"the ceiling broadcast to {body['sent']} of {count}")
            return Published(round_no + 1, stamp)

        return await run_push(
            SubscriberFleet(jobs),
            count,
            rounds,
            publish,
            initial_messages=1,
            connect_timeout=connect_timeout,
            delivery_timeout=delivery_timeout,
            server_pids=[ceiling.pid],
            # Its RSS per idle subscriber: what aiohttp and the transport cost per socket alone.
            rss_pid=ceiling.pid,
        )


def main() -> None:
    """Serve on 127.0.0.1:PORT until killed."""
    port, body_file = int(sys.argv[1]), Path(sys.argv[2])
    web.run_app(
        make_app(body_file.read_bytes()),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
