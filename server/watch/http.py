"""GET /api/v1/watch: the push channel; nothing raised after the upgrade leaves this handler.

A bad message is answered with an error message and the socket stays open; a failure of the
server itself closes the socket with 1011 and is logged here, with the connection id: the HTTP
error middleware never sees an upgraded request.
"""

from __future__ import annotations

import contextlib
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from server.api.common import principal, services
from server.domain.scopes import Permission, Principal
from server.domain.validation import validate_app_name, validate_env_name
from server.errors import AppError, ErrorCode
from server.keys import CONFIG, HUB
from server.middleware import authenticate, begin_request, end_request, failure_answer
from server.watch.connection import CLOSE_INTERNAL_ERROR, WatchConnection
from server.watch.hub import Hub
from server.watch.messages import Ack, Subscribe, Unsubscribe, parse_op, subscribe_from_query

log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 16 * 1024
# What ends the receive loop (what ends aiohttp's `async for` over a socket).
_ENDS = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED})


async def _subscribe(request: web.Request, hub: Hub, conn: WatchConnection, op: Subscribe) -> None:
    app, env = validate_app_name(op.app), validate_env_name(op.env)
    conn.principal.require(app, Permission.READ_CONFIG)
    if not await services(request).env_exists(app, env):
        raise AppError(ErrorCode.NOT_FOUND, f"env {env!r} of app {app!r} not found")
    hub.subscribe(conn, app, env, op.after, op.instance, op.labels)


async def _handle(request: web.Request, hub: Hub, conn: WatchConnection, raw: str) -> None:
    """One text message; an AppError goes back as an error message, anything else escapes."""
    try:
        op = parse_op(raw)
        if isinstance(op, Subscribe):
            await _subscribe(request, hub, conn, op)
        elif isinstance(op, Unsubscribe):
            hub.unsubscribe(conn, op.app, op.env)
        elif isinstance(op, Ack):
            hub.ack(conn, op.app, op.env, op.version)
    except AppError as exc:
        conn.send_error(exc.error, exc.message)


async def _subscribe_at_open(request: web.Request, hub: Hub, conn: WatchConnection) -> None:
    # Its own coroutine: the parsed query is freed once it ends, not held for the socket's life.
    try:
        at_open = subscribe_from_query(request.query)
        if at_open is not None:
            await _subscribe(request, hub, conn, at_open)
    except AppError as exc:
        conn.send_error(exc.error, exc.message)


def _log_open(conn: WatchConnection, caller: Principal) -> None:
    # Logged from a plain function: logging's caller lookup makes a frame object of its caller,
    # which from the handler would stay alive with the handler's coroutine for the socket's life.
    log.info("ws %d open for %s", conn.id, caller.name)


async def watch(request: web.Request) -> web.StreamResponse:
    """Subscribe over a WebSocket; releases are pushed in version order per env."""
    # The route's policy is observes_itself: what the observe middleware does for other
    # routes is done here, without a coroutine of its own parked under this one.
    started = begin_request(request)
    try:
        await authenticate(request)
        caller = principal(request)
        ws = web.WebSocketResponse(
            # Pings come from the hub's heartbeat; PONGs must reach this loop to count.
            autoping=False,
            compress=False,
            max_msg_size=MAX_CLIENT_MESSAGE,
        )
        await ws.prepare(request)
    except Exception as exc:
        answer = failure_answer(request, exc)
        end_request(request, answer, started)
        return answer
    hub = request.app[HUB]
    conn = WatchConnection(
        ws, caller, request.app[CONFIG].limits.send_queue_size, request.transport, request.remote
    )
    hub.add(conn)
    conn.start()
    _log_open(conn, caller)
    code, reason = int(WSCloseCode.OK), ""
    try:
        await _subscribe_at_open(request, hub, conn)
        # The loop in the handler itself, and receive() rather than `async for`: each idle
        # socket parks two coroutines fewer.
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.TEXT:
                await _handle(request, hub, conn, msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.pong_received()
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.BINARY:
                conn.send_error(ErrorCode.INVALID_JSON, "send text frames with JSON objects")
            elif msg.type == WSMsgType.ERROR:
                # aiohttp has closed the socket itself (a message over MAX_CLIENT_MESSAGE: 1009).
                log.info("ws %d protocol error: %s", conn.id, msg.data)
                break
            elif msg.type in _ENDS:
                break
    except Exception:
        log.exception("ws %d failed; closing with 1011", conn.id)
        code, reason = CLOSE_INTERNAL_ERROR, f"internal error (connection {conn.id})"
    finally:
        hub.remove(conn)
        await conn.stop()
        with contextlib.suppress(Exception):
            await ws.close(code=code, message=reason.encode())
        # The code this side sent when it failed, else the one the close handshake ended with.
        log.info(
            "ws %d closed (code %s)", conn.id, code if code != WSCloseCode.OK else ws.close_code
        )
    end_request(request, ws, started)
    return ws
