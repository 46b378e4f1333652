"""GET /api/v1/watch: the push channel."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from server.api.common import principal, services
from server.domain.validation import validate_app_name, validate_env_name
from server.errors import AppError, ErrorCode
from server.keys import CONFIG, HUB
from server.watch.connection import WatchConnection
from server.watch.hub import Hub

log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 16 * 1024


def _after(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AppError(ErrorCode.INVALID_REQUEST, "after must be a non-negative integer")
    return value


async def _subscribe(
    request: web.Request, hub: Hub, conn: WatchConnection, app: Any, env: Any, after: Any
) -> None:
    if not isinstance(app, str) or not isinstance(env, str):
        raise AppError(ErrorCode.INVALID_REQUEST, "subscribe needs app and env strings")
    app, env = validate_app_name(app), validate_env_name(env)
    after_version = _after(after)
    conn.principal.require_read(app)
    if not await services(request).env_exists(app, env):
        raise AppError(ErrorCode.NOT_FOUND, f"env {env!r} of app {app!r} not found")
    hub.subscribe(conn, app, env, after_version)


async def _handle(request: web.Request, hub: Hub, conn: WatchConnection, raw: str) -> None:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AppError(ErrorCode.INVALID_JSON, "messages must be JSON objects") from None
    if not isinstance(message, dict):
        raise AppError(ErrorCode.INVALID_JSON, "messages must be JSON objects")
    op = message.get("op")
    unknown = set(message) - {"op", "app", "env", "after"}
    if unknown:
        raise AppError(ErrorCode.INVALID_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
    if op == "subscribe":
        await _subscribe(
            request, hub, conn, message.get("app"), message.get("env"), message.get("after")
        )
    elif op == "unsubscribe":
        app, env = message.get("app"), message.get("env")
        if not isinstance(app, str) or not isinstance(env, str):
            raise AppError(ErrorCode.INVALID_REQUEST, "unsubscribe needs app and env strings")
        hub.unsubscribe(conn, app, env)
    else:
        raise AppError(ErrorCode.INVALID_OP, "op must be subscribe or unsubscribe")


async def watch(request: web.Request) -> web.WebSocketResponse:
    """Subscribe over a WebSocket; releases are pushed in version order per env."""
    caller = principal(request)
    hub = request.app[HUB]
    query = request.query
    ws = web.WebSocketResponse(
        # Pings come from the hub's heartbeat; PONGs must reach this loop to count.
        autoping=False,
        compress=False,
        max_msg_size=MAX_CLIENT_MESSAGE,
    )
    await ws.prepare(request)
    conn = WatchConnection(
        ws, caller, request.app[CONFIG].limits.send_queue_size, request.transport
    )
    hub.add(conn)
    conn.start()
    log.info("ws %d open for %s", conn.id, caller.name)
    try:
        if "app" in query or "env" in query:
            try:
                await _subscribe(
                    request, hub, conn, query.get("app"), query.get("env"), query.get("after")
                )
            except AppError as exc:
                conn.send_error(exc.error, exc.message)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    await _handle(request, hub, conn, msg.data)
                except AppError as exc:
                    conn.send_error(exc.error, exc.message)
            elif msg.type == WSMsgType.PONG:
                conn.pong_received()
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.BINARY:
                conn.send_error(ErrorCode.INVALID_JSON, "send text frames with JSON objects")
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        hub.remove(conn)
        await conn.stop()
        with contextlib.suppress(Exception):
            await ws.close()
        log.info("ws %d closed (code %s)", conn.id, ws.close_code)
    return ws
