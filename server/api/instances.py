"""Who runs which version: the instances of an env across the cluster."""

from __future__ import annotations

from aiohttp import web

from server.api.common import int_query, json_response, principal, services
from server.domain.instances import filters_of


async def list_instances(request: web.Request) -> web.Response:
    """GET …/instances?label=&version=&replica=&transport=."""
    query = request.query
    filters = filters_of(
        query.get("label"),
        int_query(request, "version", None, 1, 2**62),
        query.get("replica"),
        query.get("transport"),
    )
    listing = await services(request).instances.list_instances(
        principal(request), request.match_info["app"], request.match_info["env"], filters
    )
    return json_response(listing)
