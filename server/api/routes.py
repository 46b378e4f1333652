"""The route table: what is registered and what the OpenAPI document describes, from one list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from server.api import apps, auth, config, items, openapi, ops, releases
from server.api import responses as r
from server.api import schemas as s
from server.api.spec import FLAT_MAP, NO_CONTENT, SAME_ENV, TEXT, Declared, Link, Param, Reply
from server.middleware import CALLER, PUBLIC, WEBSOCKET, Policy, declare
from server.watch import http as watch_http

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENV = "/api/v1/apps/{app}/envs/{env}"


@dataclass(frozen=True)
class Route:
    """One registered route: who may call it, and its documentation.

    To add a route, declare what only it knows; server/api/openapi.py derives the rest:
    - `responses`: each status it answers beside the derived ones, mapped to a model from
      server/api/responses.py (`{200: r.App}`), a `Reply` (text bodies, headers, `NO_CONTENT`),
      or, for an error status, a description (`{409: "exists"}`; the body is the envelope).
      Every success must name its body: tests/api/test_openapi.py fails otherwise.
    - `body`: the request model (server/api/schemas.py); adds 400 and 413. With
      `body_optional`, no body at all is read as `{}` (read_body's allow_empty).
    - path parameters come from the path's `{names}` (spec.PATH_PARAMS); `{app}` adds 404.
    - `query`: names from spec.QUERY_PARAMS, or a `Param` of its own; any adds 400.
    - `policy`: CALLER adds 401, 403 and 503; every route may answer 500.
    - `links`: `Link`s from an answer to the operations it leads to (stateful testing).
    """

    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    responses: Mapping[int, Declared] = field(default_factory=dict)
    policy: Policy = CALLER
    tag: str = "config"
    query: tuple[str | Param, ...] = ()
    links: tuple[Link, ...] = ()
    body_optional: bool = False

    @property
    def name(self) -> str:
        """The route name: the handler's name."""
        return self.handler.__name__


_ITEM = {**SAME_ENV, "key": "$request.path.key"}
_RELEASE = {**SAME_ENV, "version": "$response.body#/version"}
_FIRST_ENV = {"app": "$response.body#/name", "env": "$response.body#/envs/0"}

# The config read is the hot path: registered first, it is the first route tried.
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"{ENV}/config",
        config.get_config,
        "Latest release; ETag, formats, long poll",
        responses={
            200: Reply(
                "the latest release, as JSON or rendered in `format`",
                r.Config,
                media={"text/plain": TEXT, "application/yaml": FLAT_MAP},
                headers=("ETag", "X-Config-Version"),
            ),
            304: Reply(
                "If-None-Match is current, or the long poll ended with nothing newer",
                bodiless=True,
                optional_headers=("ETag", "X-Config-Version"),
            ),
            404: "not_found, or not_published: the env was never published",
            409: "format_conflict: two keys give one dotenv name",
        },
        query=("format", "after", "wait"),
    ),
    Route(
        "GET",
        "/healthz",
        ops.healthz,
        "Process is up",
        responses={200: r.Health},
        policy=PUBLIC,
        tag="ops",
    ),
    Route(
        "GET",
        "/readyz",
        ops.readyz,
        "Store and coordinator answer",
        responses={200: r.Readiness, 503: Reply("not ready: which part, not why", r.Readiness)},
        policy=PUBLIC,
        tag="ops",
    ),
    Route(
        "GET",
        "/metrics",
        ops.get_metrics,
        "Prometheus metrics",
        responses={
            200: Reply("Prometheus text exposition", media={"text/plain": TEXT}),
            401: "server.metrics_token is set and the request did not bear it",
        },
        policy=PUBLIC,
        tag="ops",
    ),
    Route(
        "POST",
        "/api/v1/login",
        auth.login,
        "Sign in; returns a session token",
        s.LoginBody,
        {
            200: r.SignedIn,
            401: "invalid_credentials",
            429: "too_many_attempts: the name or the address is locked for a while",
            503: "busy: too many sign-ins at once",
        },
        policy=PUBLIC,
        tag="auth",
    ),
    Route(
        "POST",
        "/api/v1/logout",
        auth.logout,
        "End the caller's session",
        responses={204: NO_CONTENT},
        tag="auth",
    ),
    Route(
        "GET",
        "/api/v1/me",
        auth.whoami,
        "The caller and its scopes",
        responses={200: r.Me},
        tag="auth",
    ),
    Route(
        "POST",
        "/api/v1/tokens",
        auth.create_token,
        "Create an API token (admin)",
        s.CreateTokenBody,
        {201: r.NewToken, 409: "exists: a live token has that name"},
        tag="auth",
        links=(Link(201, "revoke_token", {"id": "$response.body#/id"}),),
    ),
    Route(
        "GET",
        "/api/v1/tokens",
        auth.list_tokens,
        "List API tokens (admin)",
        responses={200: r.TokenList},
        tag="auth",
    ),
    Route(
        "DELETE",
        "/api/v1/tokens/{id}",
        auth.revoke_token,
        "Revoke a token (admin)",
        responses={204: NO_CONTENT, 404: "no such token"},
        tag="auth",
    ),
    Route(
        "GET",
        "/api/v1/apps",
        apps.list_apps,
        "Apps the caller may see",
        responses={200: r.AppList},
        tag="apps",
    ),
    Route(
        "POST",
        "/api/v1/apps",
        apps.create_app,
        "Create an app",
        s.CreateAppBody,
        {201: r.App, 409: "exists"},
        tag="apps",
        links=(
            Link(201, "get_app", {"app": "$response.body#/name"}),
            Link(201, "create_env", {"app": "$response.body#/name"}),
            Link(201, "put_item", _FIRST_ENV),
            Link(201, "delete_app", {"app": "$response.body#/name"}),
        ),
    ),
    Route("GET", "/api/v1/apps/{app}", apps.get_app, "One app", responses={200: r.App}, tag="apps"),
    Route(
        "DELETE",
        "/api/v1/apps/{app}",
        apps.delete_app,
        "Delete an app and its history",
        responses={204: NO_CONTENT},
        tag="apps",
    ),
    Route(
        "POST",
        "/api/v1/apps/{app}/envs",
        apps.create_env,
        "Add an env",
        s.CreateEnvBody,
        {201: r.App, 409: "exists"},
        tag="apps",
    ),
    Route(
        "GET", f"{ENV}/items", items.list_items, "The draft", responses={200: r.Draft}, tag="draft"
    ),
    Route(
        "PATCH",
        f"{ENV}/items",
        items.patch_items,
        "Many edits, all or none",
        s.PatchItemsBody,
        {200: r.Patched, 409: "limit_exceeded"},
        tag="draft",
        links=(Link(200, "get_diff", SAME_ENV), Link(200, "publish_release", SAME_ENV)),
    ),
    Route(
        "GET",
        f"{ENV}/items/{{key}}",
        items.get_item,
        "One draft item; ETag = revision",
        responses={200: Reply("the item", r.Item, headers=("ETag",))},
        tag="draft",
    ),
    Route(
        "PUT",
        f"{ENV}/items/{{key}}",
        items.put_item,
        "Create or replace an item",
        s.PutItemBody,
        {
            200: Reply("replaced", r.Item, headers=("ETag",)),
            201: Reply("created", r.Item, headers=("ETag",)),
            409: "limit_exceeded",
            412: "precondition_failed: If-Match or If-None-Match did not hold",
        },
        tag="draft",
        links=tuple(
            Link(status, operation, _ITEM if operation != "publish_release" else SAME_ENV)
            for status in (200, 201)
            for operation in ("get_item", "delete_item", "publish_release")
        ),
    ),
    Route(
        "DELETE",
        f"{ENV}/items/{{key}}",
        items.delete_item,
        "Remove an item from the draft",
        responses={204: NO_CONTENT, 412: "precondition_failed: If-Match did not hold"},
        tag="draft",
    ),
    Route(
        "GET",
        f"{ENV}/diff",
        items.get_diff,
        "Draft against the latest release",
        responses={200: r.Diff},
        tag="draft",
    ),
    Route(
        "POST",
        f"{ENV}/releases",
        releases.publish_release,
        "Publish the draft",
        s.PublishBody,
        {
            201: r.Release,
            409: "nothing_to_publish, or lock_lost: retry",
            503: "lock_timeout, or the store or coordinator is unavailable",
        },
        tag="releases",
        body_optional=True,
        links=(
            Link(201, "get_release", _RELEASE),
            Link(201, "rollback_release", _RELEASE),
            Link(201, "get_config", SAME_ENV),
            Link(201, "list_releases", SAME_ENV),
        ),
    ),
    Route(
        "GET",
        f"{ENV}/releases",
        releases.list_releases,
        "Releases, newest first",
        responses={200: r.ReleaseList},
        tag="releases",
        query=("limit", "before"),
    ),
    Route(
        "GET",
        f"{ENV}/releases/{{version}}",
        releases.get_release,
        "One release",
        responses={200: r.Release},
        tag="releases",
    ),
    Route(
        "POST",
        f"{ENV}/releases/{{version}}/rollback",
        releases.rollback_release,
        "New release with an earlier snapshot",
        s.RollbackBody,
        {201: r.Release, 409: "lock_lost: retry"},
        tag="releases",
        body_optional=True,
        links=(Link(201, "get_release", _RELEASE),),
    ),
    Route(
        "GET",
        "/api/v1/watch",
        watch_http.watch,
        "WebSocket push channel",
        responses={101: Reply("switching protocols", bodiless=True)},
        query=("app", "env", "after", "token"),
        policy=WEBSOCKET,
    ),
    Route(
        "GET",
        "/api/v1/cluster",
        ops.get_cluster,
        "Replicas, etcd members, lock holders",
        responses={200: r.Cluster},
        tag="ops",
    ),
    Route(
        "GET",
        "/api/v1/audit",
        ops.list_audit,
        "Who changed what (admin)",
        responses={200: r.AuditLog},
        tag="ops",
        query=("app", "limit", "before"),
    ),
    Route(
        "GET",
        "/api/openapi.json",
        openapi.get_openapi,
        "This document",
        responses={200: r.OpenApiDocument},
        policy=PUBLIC,
        tag="ops",
    ),
)


def add_routes(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    """Register every route under its handler's name, with its policy for the middleware."""
    for route in routes:
        registered = app.router.add_route(route.method, route.path, route.handler, name=route.name)
        declare(app, registered, route.policy)
