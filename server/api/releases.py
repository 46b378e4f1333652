"""Publishing, rollback and release history."""

from __future__ import annotations

from aiohttp import web

from server.api.common import int_query, json_response, path_int, principal, read_body, services
from server.api.schemas import PublishBody, RollbackBody
from server.domain.secrets import may_see
from server.keys import METRICS


def _where(request: web.Request) -> tuple[str, str]:
    return request.match_info["app"], request.match_info["env"]


async def publish_release(request: web.Request) -> web.Response:
    """POST …/releases."""
    body = await read_body(request, PublishBody, allow_empty=True)
    release = await services(request).releases.publish(
        principal(request), *_where(request), body.comment, body.draft_revision, body.emergency
    )
    request.app[METRICS].publishes.inc()
    return json_response(
        release.to_json(reveal=may_see(principal(request), release.app)), status=201
    )


async def list_releases(request: web.Request) -> web.Response:
    """GET …/releases?limit=&before=."""
    limit = int_query(request, "limit", 50, 1, 500)
    before = int_query(request, "before", None, 1, 2**62)
    assert limit is not None
    releases = await services(request).releases.list_releases(
        principal(request), *_where(request), limit, before
    )
    return json_response({"releases": [r.summary_json() for r in releases]})


async def get_release(request: web.Request) -> web.Response:
    """GET …/releases/{version}."""
    release = await services(request).releases.get_release(
        principal(request), *_where(request), path_int(request, "version")
    )
    return json_response(release.to_json(reveal=may_see(principal(request), release.app)))


async def rollback_release(request: web.Request) -> web.Response:
    """POST …/releases/{version}/rollback."""
    body = await read_body(request, RollbackBody, allow_empty=True)
    release = await services(request).releases.rollback(
        principal(request),
        *_where(request),
        path_int(request, "version"),
        body.comment,
        body.emergency,
    )
    request.app[METRICS].publishes.inc()
    return json_response(
        release.to_json(reveal=may_see(principal(request), release.app)), status=201
    )
