"""The draft: items, batches and the diff."""

from __future__ import annotations

from aiohttp import web

from server.api.common import (
    etag_revision,
    json_response,
    principal,
    read_body,
    services,
)
from server.api.schemas import PatchItemsBody, PutItemBody
from server.domain.drafts import Edits, Precondition
from server.domain.secrets import may_see
from server.errors import AppError, ErrorCode


def _where(request: web.Request) -> tuple[str, str]:
    return request.match_info["app"], request.match_info["env"]


async def list_items(request: web.Request) -> web.Response:
    """GET …/items: the draft and its revision; secrets null for those who may not see them."""
    who, (app, env) = principal(request), _where(request)
    revision, items = await services(request).drafts.list_items(who, app, env)
    reveal = may_see(who, app)
    shown = [item.to_json(reveal=reveal) for item in items]
    return json_response({"draft_revision": revision, "items": shown})


async def get_item(request: web.Request) -> web.Response:
    """GET …/items/{key}; ETag is the item's revision (never derived from the value)."""
    who, (app, env) = principal(request), _where(request)
    item = await services(request).drafts.get_item(who, app, env, request.match_info["key"])
    return json_response(
        item.to_json(reveal=may_see(who, app)), headers={"ETag": f'"{item.revision}"'}
    )


def _precondition(request: web.Request) -> Precondition:
    """If-Match (a revision) and If-None-Match (only `*`, create only) of an item write."""
    revision = etag_revision(request.headers.get("If-Match"))
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise AppError(ErrorCode.INVALID_REQUEST, "If-None-Match on an item write must be *")
    return Precondition(revision, absent=if_none_match is not None)


async def put_item(request: web.Request) -> web.Response:
    """PUT …/items/{key}; If-Match guards a revision, If-None-Match: * creates only."""
    precondition = _precondition(request)
    body = await read_body(request, PutItemBody)
    who, (app, env) = principal(request), _where(request)
    item, created = await services(request).drafts.put_item(
        who,
        app,
        env,
        request.match_info["key"],
        body.value,
        body.comment,
        precondition,
        body.secret,
    )
    return json_response(
        item.to_json(reveal=may_see(who, app)),
        status=201 if created else 200,
        headers={"ETag": f'"{item.revision}"'},
    )


async def delete_item(request: web.Request) -> web.Response:
    """DELETE …/items/{key}; If-Match guards a revision."""
    precondition = Precondition(etag_revision(request.headers.get("If-Match")))
    await services(request).drafts.delete_item(
        principal(request), *_where(request), request.match_info["key"], precondition
    )
    return web.Response(status=204)


async def patch_items(request: web.Request) -> web.Response:
    """PATCH …/items: {"set": {k: v}, "delete": [k]}, all or none; the keys it changed."""
    body = await read_body(request, PatchItemsBody)
    edits = Edits(secrets=body.secrets(), comments=body.comments())
    revision, changed = await services(request).drafts.patch_items(
        principal(request), *_where(request), body.values(), body.delete, edits
    )
    return json_response({"draft_revision": revision, "changed": changed})


async def get_diff(request: web.Request) -> web.Response:
    """GET …/diff."""
    diff = await services(request).drafts.diff(principal(request), *_where(request))
    return json_response(diff.to_json())


async def discard_draft(request: web.Request) -> web.Response:
    """POST …/discard: the draft back to the latest release (or empty); the new draft."""
    who = principal(request)
    app, env = _where(request)
    revision, items = await services(request).drafts.discard(who, app, env)
    reveal = may_see(who, app)
    shown = [item.to_json(reveal=reveal) for item in items]
    return json_response({"draft_revision": revision, "items": shown})
