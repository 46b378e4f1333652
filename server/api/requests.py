"""Release requests: make, list, approve, reject, withdraw."""

from __future__ import annotations

from aiohttp import web

from server.api.common import int_query, json_response, path_int, principal, read_body, services
from server.api.schemas import CreateReleaseRequestBody, DecideReleaseRequestBody
from server.domain.requests import MAX_PAGE
from server.domain.secrets import may_see
from server.keys import METRICS


def _where(request: web.Request) -> tuple[str, str]:
    return request.match_info["app"], request.match_info["env"]


async def list_release_requests(request: web.Request) -> web.Response:
    """GET …/release-requests?status=&limit=&before=."""
    limit = int_query(request, "limit", 50, 1, MAX_PAGE)
    before = int_query(request, "before", None, 1, 2**62)
    assert limit is not None
    found = await services(request).requests.list_requests(
        principal(request), *_where(request), request.query.get("status"), limit, before
    )
    return json_response({"requests": [r.to_json() for r in found]})


async def create_release_request(request: web.Request) -> web.Response:
    """POST …/release-requests."""
    body = await read_body(request, CreateReleaseRequestBody)
    made = await services(request).requests.create(
        principal(request),
        *_where(request),
        body.comment,
        body.draft_revision,
        body.rollback_to,
        body.gray.to_rule() if body.gray is not None else None,
    )
    return json_response(made.to_json(), status=201)


async def get_release_request(request: web.Request) -> web.Response:
    """GET …/release-requests/{id}."""
    found = await services(request).requests.get_request(
        principal(request), *_where(request), path_int(request, "id")
    )
    return json_response(found.to_json())


async def approve_release_request(request: web.Request) -> web.Response:
    """POST …/release-requests/{id}/approve: 201 the release it made."""
    body = await read_body(request, DecideReleaseRequestBody, allow_empty=True)
    release = await services(request).requests.approve(
        principal(request), *_where(request), path_int(request, "id"), body.comment
    )
    request.app[METRICS].publishes.inc()
    reveal = may_see(principal(request), request.match_info["app"])
    return json_response(release.to_json(reveal=reveal), status=201)


async def reject_release_request(request: web.Request) -> web.Response:
    """POST …/release-requests/{id}/reject."""
    body = await read_body(request, DecideReleaseRequestBody, allow_empty=True)
    decided = await services(request).requests.reject(
        principal(request), *_where(request), path_int(request, "id"), body.comment
    )
    return json_response(decided.to_json())


async def withdraw_release_request(request: web.Request) -> web.Response:
    """DELETE …/release-requests/{id}."""
    await services(request).requests.withdraw(
        principal(request), *_where(request), path_int(request, "id")
    )
    return web.Response(status=204)
