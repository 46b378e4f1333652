"""Request ids, one log line per request, every error answer, and authentication by route policy."""

from __future__ import annotations

import enum
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import aiohttp_jinja2
import orjson
from aiohttp import hdrs, web
from yarl import URL

from server.api.common import HELD, PRINCIPAL, SESSION_SECRET, services
from server.domain.auth import check_csrf
from server.errors import AppError, ErrorCode, error_envelope
from server.keys import ACCESS_LOG, METRICS

log = logging.getLogger("server.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = web.RequestKey("request_id", str)
SESSION_COOKIE = "cc_session"
SECURE_SESSION_COOKIE = "__Host-cc_session"
"""The session cookie's name when the public origin is https (Secure, Path=/, no Domain)."""
CSRF_HEADER = "X-CSRF-Token"
API_PREFIX = "/api/v1/"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# aiohttp's own answer to an HTTPException is text/plain: these describe that body, not ours.
_BODY_HEADERS = frozenset({hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH})


class Access(enum.Enum):
    """Who may call a route."""

    PUBLIC = "public"
    """Anyone: the handler itself checks what it needs (sign-in forms, health)."""
    CALLER = "caller"
    """A bearer token, or the admin page's session cookie (with its CSRF token on writes)."""
    PROTOCOL = "protocol"
    """A compatible API (server/compat/): its handler reads the protocol's own credentials
    and answers a missing or wrong one as that protocol does; never the session cookie."""


@dataclass(frozen=True, slots=True)
class Policy:
    """What a route asks of its callers, and how its errors are answered."""

    access: Access = Access.CALLER
    query_token: bool = False
    """The token may come as ?token= (a browser's WebSocket cannot set headers)."""
    same_origin: bool = False
    """A session cookie counts only from this origin, also on a GET (a WebSocket upgrade)."""
    page: bool = False
    """An admin page route: errors are an HTML page, not the JSON envelope."""
    observes_itself: bool = False
    """The handler calls begin_request, authenticate, failure_answer and end_request itself
    (the WebSocket, open for hours): `observe` adds no coroutine of its own under it."""

    @property
    def needs_caller(self) -> bool:
        """True when a request without credentials is a 401."""
        return self.access is Access.CALLER


CALLER = Policy()
PUBLIC = Policy(Access.PUBLIC)
WEBSOCKET = Policy(query_token=True, same_origin=True, observes_itself=True)
PAGE = Policy(Access.PUBLIC, page=True)
PROTOCOL = Policy(Access.PROTOCOL)
# Unmatched requests (404, 405) under /api/v1 need a caller first: without one, nothing
# tells which routes exist. Elsewhere they are answered as they are.
_UNMATCHED_API = CALLER
_UNMATCHED = PUBLIC

POLICIES = web.AppKey("route_policies", dict[web.AbstractRoute, Policy])
"""The policy of every registered route, keyed by the route aiohttp matched."""


def declare(app: web.Application, route: web.AbstractRoute, policy: Policy) -> None:
    """Record the policy of a registered route."""
    app.setdefault(POLICIES, {})[route] = policy


def policy_of(request: web.Request) -> Policy:
    """The policy of the route the request matched: one dict lookup."""
    policy = request.app[POLICIES].get(request.match_info.route)
    if policy is not None:
        return policy
    return _UNMATCHED_API if request.path.startswith(API_PREFIX) else _UNMATCHED


def session_cookie_name(request: web.Request) -> str:
    """The session cookie's name for this request's public origin: __Host- when it is https."""
    return SECURE_SESSION_COOKIE if request.secure else SESSION_COOKIE


def error_response(code: str, status: int, message: str) -> web.Response:
    """The documented error envelope as a response."""
    return web.Response(
        body=orjson.dumps(error_envelope(code, message), option=orjson.OPT_APPEND_NEWLINE),
        status=status,
        content_type="application/json",
    )


def error_answer(request: web.Request, code: str, status: int, message: str) -> web.Response:
    """The answer to a failed request: an HTML page on the admin page's routes, else JSON."""
    if not policy_of(request).page:
        return error_response(code, status, message)
    return aiohttp_jinja2.render_template(
        "error.html",
        request,
        {
            "status": status,
            "code": code,
            "message": message,
            "request_id": request.get(REQUEST_ID, ""),
            "title": _title(status),
        },
        status=status,
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def loggable(text: str) -> str:
    """text with control characters escaped, so that no field can forge a log line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@web.middleware
def observe(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Give the request an id, authenticate it, turn every failure into its answer, log one
    line.

    Authentication is a step here, not a middleware of its own, and a route whose policy says
    `observes_itself` (the WebSocket) gets its handler's coroutine as is: a middleware's
    coroutine stays parked under its handler's for as long as a WebSocket is open (~300 bytes
    each).
    """
    if policy_of(request).observes_itself:
        return handler(request)
    return _observed(request, handler)


async def _observed(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = begin_request(request)
    response: web.StreamResponse
    try:
        await authenticate(request)
        response = await handler(request)
    except Exception as exc:
        response = failure_answer(request, exc)
    end_request(request, response, started)
    return response


def begin_request(request: web.Request) -> float:
    """Give the request its id (the caller's X-Request-Id when well formed); its start time."""
    given = request.headers.get("X-Request-Id")
    request[REQUEST_ID] = given if given and _REQUEST_ID_OK.match(given) else os.urandom(8).hex()
    return time.perf_counter()


def failure_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer to a request whose handling raised exc (called in its except block); an HTTP
    exception below 400 (a redirect) is raised again."""
    if isinstance(exc, AppError):
        response = error_answer(request, exc.code, exc.status, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code = ErrorCode.for_status(exc.status).code
        message = exc.reason if exc.status != 413 else "the request body is too large"
        response = error_answer(request, code, exc.status, message)
        for name, value in exc.headers.items():
            if name not in _BODY_HEADERS:
                response.headers[name] = value
        return response
    request_id = request[REQUEST_ID]
    log.exception(
        "rid=%s unhandled error on %s %s", request_id, request.method, loggable(request.path)
    )
    return error_answer(
        request,
        ErrorCode.INTERNAL.code,
        ErrorCode.INTERNAL.status,
        f"internal error (request id {request_id})",
    )


def end_request(request: web.Request, response: web.StreamResponse, started: float) -> None:
    """The request id header (unless sent), the metrics and the access line of an answer."""
    elapsed = time.perf_counter() - started
    request_id = request[REQUEST_ID]
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    request.app[METRICS].observe_request(request.method, route_name, response.status, elapsed)
    # The path only: a query string may carry ?token=. The client is the peer, or the
    # forwarded address when the peer is a trusted proxy (server.forwarded).
    request.app[ACCESS_LOG].request(
        request_id,
        request.method,
        loggable(request.path),
        response.status,
        elapsed * 1000,
        str(request.remote),
        held=request.get(HELD, False),
    )


def _bearer(request: web.Request, policy: Policy) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AppError(ErrorCode.UNAUTHORIZED, "Authorization must be 'Bearer TOKEN'")
        return value.strip()
    if policy.query_token and "token" in request.query:
        return request.query["token"]
    return None


async def authenticate(request: web.Request) -> None:
    """Resolve the caller where the route's policy asks: bearer token, or session cookie."""
    policy = policy_of(request)
    if policy.access is not Access.CALLER:
        return
    auth = services(request).auth
    secret = _bearer(request, policy)
    if secret is not None:
        request[PRINCIPAL] = await auth.authenticate(secret)
        return
    cookie = request.cookies.get(session_cookie_name(request))
    if cookie is None:
        raise AppError(ErrorCode.UNAUTHORIZED, "a bearer token or a session is required")
    principal = await auth.authenticate(cookie)
    if principal.kind != "session":
        raise AppError(ErrorCode.UNAUTHORIZED, "the session cookie is not a session")
    unsafe = request.method in _UNSAFE
    if unsafe and not check_csrf(cookie, request.headers.get(CSRF_HEADER)):
        raise AppError(ErrorCode.CSRF_FAILED, "missing or wrong CSRF token")
    if (unsafe or policy.same_origin) and not same_origin(request):
        raise AppError(ErrorCode.FORBIDDEN, "a request from another origin is refused")
    request[PRINCIPAL] = principal
    request[SESSION_SECRET] = cookie


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request came from another origin (scheme, host, port).

    Ours is the public origin: server.public_url, else a trusted proxy's X-Forwarded-Proto and
    -Host, else the request's own (server.forwarded gives the request those).
    """
    origin = request.headers.get("Origin")
    if origin is None:
        # Browsers send Origin on every cross-origin request that could change something.
        return True
    try:
        theirs = URL(origin)
        ours = request.url
    except ValueError:
        return False
    # An opaque origin ("null": sandboxed frames, file://) has no host and never matches.
    return (
        theirs.host is not None
        and theirs.scheme == ours.scheme
        and theirs.host == ours.host
        and theirs.port == ours.port
    )
