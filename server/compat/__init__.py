"""The APIs existing clients (Apollo, Spring Cloud Config, Nacos) read through unchanged.

Each protocol's module maps its paths and credentials onto apps, envs and published
releases, and answers as that protocol does (its status codes and bodies, not the JSON
envelope of /api/v1). Each declares its routes as `ROUTES` (server.api.routes.Route, policy
PROTOCOL); who may read is decided in server/domain/compat.py for all three.
"""

from __future__ import annotations

from aiohttp import web

from server.api.routes import Route, add_routes
from server.compat import apollo, nacos, spring
from server.config import CompatSection


def compat_routes(section: CompatSection) -> tuple[Route, ...]:
    """The routes of the protocols switched on in `[compat]`."""
    routes: list[Route] = []
    # Each protocol adds its line here: `if section.NAME: routes += NAME.ROUTES`.
    if section.apollo:
        routes += apollo.ROUTES
    if section.spring:
        routes += spring.ROUTES
    if section.nacos:
        routes += nacos.ROUTES
    return tuple(routes)


def add_compat_routes(app: web.Application, section: CompatSection) -> None:
    """Register the switched-on protocols' routes (after the API's: the hot read stays first)."""
    add_routes(app, compat_routes(section))
