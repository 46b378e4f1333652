"""Request ids, one log line per request, the error envelope, and authentication."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from server.api.common import PRINCIPAL, SESSION_SECRET, services
from server.domain.auth import check_csrf
from server.errors import AppError, ErrorCode, error_envelope
from server.keys import METRICS

log = logging.getLogger("server.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = web.RequestKey("request_id", str)
SESSION_COOKIE = "cc_session"
CSRF_HEADER = "X-CSRF-Token"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PUBLIC = frozenset({"/api/v1/login"})


def error_response(code: str, status: int, message: str) -> web.Response:
    """The documented error envelope as a response."""
    return web.Response(
        body=orjson.dumps(error_envelope(code, message)),
        status=status,
        content_type="application/json",
    )


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id, turn every failure into the envelope, log one line."""
    given = request.headers.get("X-Request-Id")
    request_id = given if given and _REQUEST_ID_OK.match(given) else os.urandom(8).hex()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except AppError as exc:
        response = error_response(exc.code, exc.status, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = ErrorCode.for_status(exc.status).code
        message = exc.reason if exc.status != 413 else "the request body is too large"
        response = error_response(code, exc.status, message)
    except Exception:
        log.exception("rid=%s unhandled error on %s %s", request_id, request.method, request.path)
        response = error_response("internal", 500, f"internal error (request id {request_id})")
    elapsed = time.perf_counter() - started
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    request.app[METRICS].observe_request(request.method, route_name, response.status, elapsed)
    # The path only: a query string may carry ?token=.
    log.info(
        "rid=%s %s %s %d %.1fms",
        request_id,
        request.method,
        request.path,
        response.status,
        elapsed * 1000,
    )
    return response


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AppError(ErrorCode.UNAUTHORIZED, "Authorization must be 'Bearer TOKEN'")
        return value.strip()
    if request.path == "/api/v1/watch" and "token" in request.query:
        return request.query["token"]
    return None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the caller of every /api/v1 route: bearer token, or session cookie plus CSRF."""
    if not request.path.startswith("/api/v1/") or request.path in _PUBLIC:
        return await handler(request)
    auth = services(request).auth
    secret = _bearer(request)
    if secret is not None:
        request[PRINCIPAL] = await auth.authenticate(secret)
        return await handler(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise AppError(ErrorCode.UNAUTHORIZED, "a bearer token or a session is required")
    principal = await auth.authenticate(cookie)
    if principal.kind != "session":
        raise AppError(ErrorCode.UNAUTHORIZED, "the session cookie is not a session")
    if request.method in _UNSAFE and not check_csrf(cookie, request.headers.get(CSRF_HEADER)):
        raise AppError(ErrorCode.CSRF_FAILED, "missing or wrong CSRF token")
    if request.path == "/api/v1/watch" and not _same_origin(request):
        raise AppError(ErrorCode.FORBIDDEN, "cross-site WebSocket refused")
    request[PRINCIPAL] = principal
    request[SESSION_SECRET] = cookie
    return await handler(request)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1] == request.host
