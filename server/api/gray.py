"""Gray releases: start, read, widen, promote, abandon."""

from __future__ import annotations

from aiohttp import web

from server.api.common import json_response, principal, read_body, services
from server.api.schemas import (
    GrayCourseBody,
    GrayPreviewBody,
    StartGrayBody,
    WidenGrayBody,
)
from server.domain.secrets import may_see
from server.keys import METRICS
from server.records import Release


def _where(request: web.Request) -> tuple[str, str]:
    return request.match_info["app"], request.match_info["env"]


def _release(request: web.Request, release: Release, status: int) -> web.Response:
    shown = release.to_json(reveal=may_see(principal(request), release.app))
    return json_response(shown, status=status)


async def get_gray(request: web.Request) -> web.Response:
    """GET …/gray: the active gray release and how many live instances it reaches."""
    release, matched = await services(request).gray.get(principal(request), *_where(request))
    shown = release.to_json(reveal=may_see(principal(request), release.app))
    return json_response({**shown, "matched": matched})


async def preview_gray(request: web.Request) -> web.Response:
    """POST …/gray/preview: how many live instances a rule would take, and which."""
    body = await read_body(request, GrayPreviewBody)
    taken = await services(request).gray.preview(
        principal(request), *_where(request), body.rule.to_rule()
    )
    return json_response(taken)


async def start_gray(request: web.Request) -> web.Response:
    """POST …/gray."""
    body = await read_body(request, StartGrayBody)
    release = await services(request).gray.start(
        principal(request),
        *_where(request),
        body.comment,
        body.rule.to_rule(),
        body.draft_revision,
        body.emergency,
    )
    request.app[METRICS].publishes.inc()
    return _release(request, release, 201)


async def widen_gray(request: web.Request) -> web.Response:
    """PATCH …/gray."""
    body = await read_body(request, WidenGrayBody)
    release = await services(request).gray.widen(
        principal(request), *_where(request), body.rule.to_rule()
    )
    return _release(request, release, 200)


async def promote_gray(request: web.Request) -> web.Response:
    """POST …/gray/promote."""
    body = await read_body(request, GrayCourseBody, allow_empty=True)
    release = await services(request).gray.promote(
        principal(request), *_where(request), body.comment
    )
    request.app[METRICS].publishes.inc()
    return _release(request, release, 200)


async def abandon_gray(request: web.Request) -> web.Response:
    """POST …/gray/abandon."""
    body = await read_body(request, GrayCourseBody, allow_empty=True)
    release = await services(request).gray.abandon(
        principal(request), *_where(request), body.comment
    )
    request.app[METRICS].publishes.inc()
    return _release(request, release, 201)
