"""Apollo's config service, at the root: `/configs`, `/configfiles`, `/notifications/v2` and
the meta server's `/services/config`, for Apollo clients pointed at configcenter unchanged.

Errors are Apollo's: a status with a short text body (401 for every credential problem, as
Apollo's config service answers), never the JSON envelope of /api/v1.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import orjson
from aiohttp import web

from server.api.answers import ANONYMOUS, ConfigAnswer, Reader
from server.api.common import HELD, services
from server.api.routes import Route
from server.api.spec import Declared, Reply
from server.domain import apollo
from server.domain.formats import JSON_TYPE
from server.domain.scopes import Principal
from server.domain.secrets import may_see
from server.errors import AppError, ErrorCode
from server.instances import Transport
from server.keys import ANSWERS, CONFIG, INSTANCES, PUBLISHED
from server.middleware import PROTOCOL
from server.published import EnvRemoved

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WARN_EVERY_SECONDS = 10.0


class ApolloRefusal(Exception):
    """An answer in Apollo's terms: a status and a short text."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _refusal(exc: AppError) -> ApolloRefusal:
    if exc.code in (ErrorCode.UNAUTHORIZED.code, ErrorCode.FORBIDDEN.code):
        return ApolloRefusal(401, "Unauthorized")
    if exc.status in (404, 429, 503):
        return ApolloRefusal(exc.status, exc.message)
    return ApolloRefusal(400, exc.message)


def _protocol(handler: Handler) -> Handler:
    """Answer every refusal of handler as Apollo does."""

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            try:
                return await handler(request)
            except AppError as exc:
                raise _refusal(exc) from None
        except ApolloRefusal as refusal:
            return web.Response(status=refusal.status, text=refusal.text)

    return answer


def _name(raw: str | None, what: str) -> str:
    """A canonical app or env name, or 404: nothing else is looked up, checked or read."""
    name = apollo.canonical_name(raw) if raw is not None else None
    if name is None:
        raise ApolloRefusal(404, f"{what} not found")
    return name


# --- credentials -------------------------------------------------------------------


async def _caller(request: web.Request, app: str) -> Principal:
    """Who reads app: an access-key signature, a bearer token, HTTP Basic with a token as
    password, or nobody (when app allows anonymous reads); 401 otherwise."""
    compat = services(request).compat
    header = request.headers.get("Authorization")
    if header is None:
        return await compat.reader(app, None)
    scheme = header.partition(" ")[0].lower()
    if scheme == "apollo":
        return await _signed(request, app, header)
    if scheme == "bearer":
        return await compat.reader(app, header.partition(" ")[2].strip() or "-")
    if scheme == "basic":
        return await compat.reader(app, _basic_password(header))
    raise ApolloRefusal(401, "Unauthorized")


async def _signed(request: web.Request, app: str, header: str) -> Principal:
    claimed = apollo.parse_apollo_authorization(header, request.headers.get("Timestamp"))
    if claimed is None:
        raise ApolloRefusal(401, "Unauthorized")
    # The app signed for is the app read: its spelling too.
    if claimed.app_id != app:
        raise ApolloRefusal(401, "InvalidAppId")
    if not apollo.timestamp_fresh(claimed.timestamp, int(time.time() * 1000)):
        raise ApolloRefusal(401, "RequestTimeTooSkewed")
    # The path and query as sent, as the client signed them.
    reader = await services(request).access_keys.signed_reader(app, claimed, request.raw_path)
    if reader is None:
        raise ApolloRefusal(401, "Unauthorized")
    return reader


def _basic_password(header: str) -> str:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApolloRefusal(401, "Unauthorized") from None
    password = decoded.partition(":")[2]
    if not password:
        raise ApolloRefusal(401, "Unauthorized")
    return password


# --- readers -----------------------------------------------------------------------

_warned_at = 0.0


def _reader(request: web.Request) -> Reader:
    """The reader the query names (`ip`, `label`), else the client's address."""
    query = request.query
    named = apollo.apollo_reader(query.get("ip"), query.get("label"), request.remote)
    if named.problem is not None:
        global _warned_at
        now = time.monotonic()
        if now - _warned_at >= WARN_EVERY_SECONDS:
            _warned_at = now
            log.warning(
                "apollo read of %s from %s: %s", request.path, request.remote, named.problem
            )
    if named.instance is None:
        return ANONYMOUS
    return Reader(named.instance, named.labels_text)


def _note(request: web.Request, app: str, env: str, reader: Reader, version: int | None) -> None:
    if reader.instance is not None:
        request.app[INSTANCES].read(
            app, env, reader.instance, reader.labels_text, Transport.APOLLO, request.remote, version
        )


# --- config reads ------------------------------------------------------------------


class _Rendered(NamedTuple):
    release_key: str
    body: bytes
    content_type: str


# Per answer (one release, clear or masked), each namespace's body, built on first read; an
# answer dropped when its release is replaced takes its bodies with it.
_rendered: weakref.WeakKeyDictionary[ConfigAnswer, dict[tuple[str, str], _Rendered]] = (
    weakref.WeakKeyDictionary()
)


def _render(answer: ConfigAnswer, kind: str, namespace: str, fmt: str | None) -> _Rendered:
    bodies = _rendered.setdefault(answer, {})
    rendered = bodies.get((kind, namespace))
    if rendered is None:
        release, items = answer.release, answer.items_shown()
        key = apollo.release_key(release.version, release.checksum, answer.reveal)
        if kind == "configs":
            configurations = apollo.configurations(fmt, release, items)
            body = apollo.config_body(release.app, release.env, namespace, configurations, key)
            rendered = _Rendered(key, body, JSON_TYPE)
        elif kind == "json":
            body = orjson.dumps(apollo.configurations(fmt, release, items))
            rendered = _Rendered(key, body, JSON_TYPE)
        else:
            rendered = _Rendered(key, *apollo.namespace_file(fmt, release, items))
        bodies[(kind, namespace)] = rendered
    return rendered


async def _read(request: web.Request, kind: str) -> web.Response:
    info = request.match_info
    app = _name(info["app"], "app")
    env = _name(info["env"], "cluster")
    namespace = info["namespace"]
    who = await _caller(request, app)
    known, fmt = apollo.namespace_format(namespace)
    if not known:
        raise ApolloRefusal(404, "namespace not found")
    reader = _reader(request)
    answer = request.app[ANSWERS].current(app, env, may_see(who, app), reader)
    if answer is None:
        raise ApolloRefusal(404, "not found")
    _note(request, app, env, reader, answer.release.version)
    rendered = _render(answer, kind, namespace, fmt)
    if kind == "configs" and request.query.get("releaseKey") == rendered.release_key:
        return web.Response(status=304)
    response = web.Response(body=rendered.body)
    response.headers["Content-Type"] = rendered.content_type
    return response


@_protocol
async def get_apollo_config(request: web.Request) -> web.Response:
    """GET /configs/{appId}/{cluster}/{namespace}?releaseKey=&ip=&label=."""
    return await _read(request, "configs")


@_protocol
async def get_apollo_config_json(request: web.Request) -> web.Response:
    """GET /configfiles/json/{appId}/{cluster}/{namespace}: the configurations alone."""
    return await _read(request, "json")


@_protocol
async def get_apollo_config_file(request: web.Request) -> web.Response:
    """GET /configfiles/{appId}/{cluster}/{namespace}: properties text, or the content."""
    return await _read(request, "file")


# --- notifications -----------------------------------------------------------------


@_protocol
async def get_apollo_notifications(request: web.Request) -> web.Response:
    """GET /notifications/v2?appId=&cluster=&notifications=: at once when a watched namespace
    is newer than the client's id, else once one is, else 304 after the hold."""
    query = request.query
    app = _name(query.get("appId"), "app")
    env = _name(query.get("cluster"), "cluster")
    await _caller(request, app)  # notifications carry no values: may read is enough
    try:
        watched = apollo.parse_notifications(query.get("notifications"))
    except ValueError as exc:
        raise ApolloRefusal(400, str(exc)) from None
    reader = _reader(request)
    if "label" not in query and reader.instance is not None:
        # Apollo clients send their label on config reads only: the labels it read with.
        known = request.app[INSTANCES].labels_text(app, env, reader.instance)
        reader = Reader(reader.instance, known)
    # Listed only when it names itself: Apollo clients identify on their config reads.
    listed = reader if "ip" in query else ANONYMOUS
    published = request.app[PUBLISHED]
    current = published.for_reader(app, env, reader.identified, reader.labels)
    version = current.version if current is not None else 0
    changed = apollo.changed_notifications(app, env, watched, version)
    if not changed:
        if current is None and not await services(request).env_exists(app, env):
            raise ApolloRefusal(404, "not found")
        _note(request, app, env, listed, current.version if current is not None else None)
        hold = request.app[CONFIG].compat.apollo_hold_seconds
        request[HELD] = True
        try:
            newer = await published.wait_newer(
                app,
                env,
                apollo.oldest_notification(watched),
                hold,
                reader.identified,
                reader.labels,
            )
        except EnvRemoved:
            raise ApolloRefusal(404, "not found") from None
        if newer is None:
            return web.Response(status=304)
        version = newer.version
        changed = apollo.changed_notifications(app, env, watched, version)
    _note(request, app, env, listed, version)
    response = web.Response(body=orjson.dumps(changed))
    response.headers["Content-Type"] = JSON_TYPE
    return response


# --- meta server -------------------------------------------------------------------


@_protocol
async def get_apollo_services(request: web.Request) -> web.Response:
    """GET /services/config?appId=&ip=: this server, as the config service to use."""
    app = request.query.get("appId")
    if app is not None:
        _name(app, "app")
    # request.url is the public origin (server.public_url, or a trusted proxy's) when set.
    home = f"{request.url.origin()}/"
    body = [{"appName": "apollo-configservice", "instanceId": home, "homepageUrl": home}]
    response = web.Response(body=orjson.dumps(body))
    response.headers["Content-Type"] = JSON_TYPE
    return response


_TEXT = Reply("an Apollo answer", bodiless=True)
_READ_REPLIES: dict[int, Declared] = {
    304: Reply("releaseKey is current", bodiless=True),
    401: "a missing or wrong credential (text)",
    404: "no such app, cluster or namespace, or never published (text)",
}

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/configs/{app}/{env}/{namespace}",
        get_apollo_config,
        "Apollo: one namespace's configurations and releaseKey",
        responses={200: _TEXT, **_READ_REPLIES},
        policy=PROTOCOL,
        tag="compat",
    ),
    Route(
        "GET",
        "/configfiles/json/{app}/{env}/{namespace}",
        get_apollo_config_json,
        "Apollo: one namespace's configurations",
        responses={200: _TEXT, **_READ_REPLIES},
        policy=PROTOCOL,
        tag="compat",
    ),
    Route(
        "GET",
        "/configfiles/{app}/{env}/{namespace}",
        get_apollo_config_file,
        "Apollo: one namespace as a file (properties, or its content)",
        responses={200: _TEXT, **_READ_REPLIES},
        policy=PROTOCOL,
        tag="compat",
    ),
    Route(
        "GET",
        "/notifications/v2",
        get_apollo_notifications,
        "Apollo: long poll for newer namespaces",
        responses={200: _TEXT, 304: Reply("nothing newer within the hold", bodiless=True)},
        policy=PROTOCOL,
        tag="compat",
    ),
    Route(
        "GET",
        "/services/config",
        get_apollo_services,
        "Apollo meta server: this server as the config service",
        responses={200: _TEXT},
        policy=PROTOCOL,
        tag="compat",
    ),
)
