"""The read path services use: published config from memory, ETags, formats, long polls."""

from __future__ import annotations

from aiohttp import web

from server.api.answers import ANONYMOUS, ConfigAnswer, Reader
from server.api.common import HELD, int_query, principal, services
from server.api.held_polls import AlreadySent
from server.domain.formats import FORMATS
from server.domain.scopes import Permission
from server.domain.secrets import may_see
from server.errors import AppError, ErrorCode, not_found
from server.instances import Transport
from server.keys import ANSWERS, HELD_POLLS, INSTANCES, PUBLISHED
from server.middleware import REQUEST_ID
from server.published import EnvRemoved

MAX_WAIT_SECONDS = 60
INSTANCE_HEADER = "X-Config-Instance"
LABELS_HEADER = "X-Config-Labels"


def _reader(request: web.Request) -> Reader:
    """The reader as it named itself: headers, else the query; anonymous when it did not."""
    headers = request.headers
    instance = headers.get(INSTANCE_HEADER)
    labels = headers.get(LABELS_HEADER)
    if request.query_string:
        query = request.query
        if instance is None:
            instance = query.get("instance")
        if labels is None:
            labels = query.get("labels")
    return ANONYMOUS if instance is None else Reader(instance, labels)


def _note_reader(
    request: web.Request,
    app: str,
    env: str,
    reader: Reader,
    transport: Transport,
    answer: ConfigAnswer | None,
) -> None:
    """An instance that named itself read version; anonymous ones are not instances. Only a
    lookup when it did not: the read path stays as cheap."""
    if reader.instance is None:
        return
    version = answer.release.version if answer is not None else None
    request.app[INSTANCES].read(
        app, env, reader.instance, reader.labels_text, transport, request.remote, version
    )


def _answer(request: web.Request, answer: ConfigAnswer, fmt: str) -> web.Response:
    if request.headers.get("If-None-Match") == answer.etag:
        return web.Response(status=304, headers=answer.headers)
    if fmt == "json":
        return web.Response(body=answer.json_body, headers=answer.json_headers)
    body, content_type = answer.render(fmt)
    response = web.Response(body=body, headers=answer.headers)
    response.headers["Content-Type"] = content_type
    return response


async def get_config(request: web.Request) -> web.StreamResponse:
    """GET …/config[?format=][&after=N&wait=S]: the latest release of an env."""
    app, env = request.match_info["app"], request.match_info["env"]
    who = principal(request)
    who.require(app, Permission.READ_CONFIG)
    reveal = may_see(who, app)
    answers = request.app[ANSWERS]
    reader = _reader(request)
    if not request.query_string:  # the common read: no format, no long poll
        answer = answers.current(app, env, reveal, reader)
        if answer is None:
            raise _never_published(request, app, env, await _exists(request, app, env))
        _note_reader(request, app, env, reader, Transport.HTTP, answer)
        return _answer(request, answer, "json")
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise AppError(
            ErrorCode.INVALID_FORMAT, f"format must be one of {', '.join(FORMATS)}, not {fmt!r}"
        )
    after = int_query(request, "after", None, 0, 2**62)
    wait = int_query(request, "wait", None, 0, MAX_WAIT_SECONDS)
    current = answers.current(app, env, reveal, reader)
    if after is None:
        if wait is not None:
            raise AppError(ErrorCode.INVALID_REQUEST, "wait needs after=<version>")
        if current is None:
            raise _never_published(request, app, env, await _exists(request, app, env))
        _note_reader(request, app, env, reader, Transport.HTTP, current)
        return _answer(request, current, fmt)
    if current is not None and current.release.version > after:
        _note_reader(request, app, env, reader, Transport.LONGPOLL, current)
        return _answer(request, current, fmt)
    if current is None and not await _exists(request, app, env):
        raise not_found(f"env {env!r} of app {app!r}")
    # Listed while it waits, with the version it holds.
    _note_reader(request, app, env, reader, Transport.LONGPOLL, current)
    within = float(wait if wait is not None else 30)
    request[HELD] = True
    polls = request.app[HELD_POLLS]
    held = await polls.hold(request, request[REQUEST_ID], (app, env), after, reveal, fmt, reader)
    try:
        newer = await request.app[PUBLISHED].wait_newer(
            app, env, after, within, reader.identified, reader.labels
        )
    except EnvRemoved:
        if held is None or held.sent is None:
            raise not_found(f"env {env!r} of app {app!r}") from None
        newer = None
    finally:
        if held is not None:
            polls.release(held)
    if held is not None and held.sent is not None:
        # Answered when the release was applied (server/api/held_polls.py).
        _note_reader(request, app, env, reader, Transport.LONGPOLL, held.sent)
        return AlreadySent()
    if newer is None:
        _note_reader(request, app, env, reader, Transport.LONGPOLL, current)
        return web.Response(status=304, headers=current.headers if current else None)
    answer = answers.of(newer, reveal)
    _note_reader(request, app, env, reader, Transport.LONGPOLL, answer)
    return _answer(request, answer, fmt)


async def _exists(request: web.Request, app: str, env: str) -> bool:
    return await services(request).env_exists(app, env)


def _never_published(request: web.Request, app: str, env: str, exists: bool) -> AppError:
    if not exists:
        return not_found(f"env {env!r} of app {app!r}")
    return AppError(ErrorCode.NOT_PUBLISHED, f"{app}/{env} has never been published")
