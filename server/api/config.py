"""The read path services use: published config from memory, ETags, formats, long polls."""

from __future__ import annotations

from aiohttp import web

from server.api.common import int_query, principal, services
from server.domain.formats import FORMATS, render
from server.errors import AppError, ErrorCode, not_found
from server.keys import PUBLISHED
from server.published import Published

MAX_WAIT_SECONDS = 60


def _answer(request: web.Request, published: Published, fmt: str) -> web.Response:
    headers = published.headers
    if request.headers.get("If-None-Match") == published.etag:
        return web.Response(status=304, headers=headers)
    if fmt == "json":
        return web.Response(body=published.json_body, headers=published.json_headers)
    cached = published.rendered.get(fmt)
    if cached is None:
        release = published.release
        cached = render(
            fmt, release.app, release.env, release.version, release.checksum, release.items
        )
        published.rendered[fmt] = cached
    body, content_type = cached
    response = web.Response(body=body, headers=headers)
    response.headers["Content-Type"] = content_type
    return response


async def get_config(request: web.Request) -> web.Response:
    """GET …/config[?format=][&after=N&wait=S]: the latest release of an env."""
    app, env = request.match_info["app"], request.match_info["env"]
    principal(request).require_read(app)
    if not request.query_string:  # the common read: no format, no long poll
        current = request.app[PUBLISHED].get(app, env)
        if current is None:
            raise _never_published(request, app, env, await _exists(request, app, env))
        return _answer(request, current, "json")
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise AppError(
            ErrorCode.INVALID_FORMAT, f"format must be one of {', '.join(FORMATS)}, not {fmt!r}"
        )
    after = int_query(request, "after", None, 0, 2**62)
    wait = int_query(request, "wait", None, 0, MAX_WAIT_SECONDS)
    published = request.app[PUBLISHED]
    current = published.get(app, env)
    if after is None:
        if wait is not None:
            raise AppError(ErrorCode.INVALID_REQUEST, "wait needs after=<version>")
        if current is None:
            raise _never_published(request, app, env, await _exists(request, app, env))
        return _answer(request, current, fmt)
    if current is not None and current.version > after:
        return _answer(request, current, fmt)
    if current is None and not await _exists(request, app, env):
        raise not_found(f"env {env!r} of app {app!r}")
    newer = await published.wait_newer(app, env, after, float(wait if wait is not None else 30))
    if newer is None:
        headers = {"X-Config-Version": str(current.version)} if current else {}
        if current is not None:
            headers["ETag"] = current.etag
        return web.Response(status=304, headers=headers)
    return _answer(request, newer, fmt)


async def _exists(request: web.Request, app: str, env: str) -> bool:
    return await services(request).env_exists(app, env)


def _never_published(request: web.Request, app: str, env: str, exists: bool) -> AppError:
    if not exists:
        return not_found(f"env {env!r} of app {app!r}")
    return AppError(ErrorCode.NOT_PUBLISHED, f"{app}/{env} has never been published")
