"""The route table: what is registered and what the OpenAPI document describes, from one list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from server.api import (
    access_keys,
    apps,
    auth,
    config,
    envs,
    gray,
    instances,
    items,
    openapi,
    ops,
    releases,
    requests,
    transfer,
    users,
)
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
        query=("format", "after", "wait", "instance", "labels"),
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
    # users and sessions
    Route(
        "GET",
        "/api/v1/users",
        users.list_users,
        "Every user (admin)",
        responses={200: r.UserList},
        tag="users",
    ),
    Route(
        "POST",
        "/api/v1/users",
        users.create_user,
        "Create a user (admin)",
        s.CreateUserBody,
        {201: r.User, 409: "exists"},
        tag="users",
    ),
    Route(
        "GET",
        "/api/v1/users/{name}",
        users.get_user,
        "One user (admin, or self)",
        responses={200: r.User, 404: "no such user"},
        tag="users",
    ),
    Route(
        "PATCH",
        "/api/v1/users/{name}",
        users.patch_user,
        "Change a user's admin flag, roles or disabled state (admin)",
        s.PatchUserBody,
        {200: r.User, 404: "no such user", 409: "last_admin"},
        tag="users",
    ),
    Route(
        "PUT",
        "/api/v1/users/{name}/password",
        users.set_password,
        "Change one's own password, or reset anyone's (admin)",
        s.PasswordBody,
        {204: NO_CONTENT, 403: "wrong_password", 404: "no such user"},
        tag="users",
    ),
    Route(
        "DELETE",
        "/api/v1/users/{name}",
        users.delete_user,
        "Delete a user (admin)",
        responses={204: NO_CONTENT, 404: "no such user", 409: "last_admin"},
        tag="users",
    ),
    Route(
        "GET",
        "/api/v1/sessions",
        users.list_sessions,
        "Live sign-in sessions: one's own, or anyone's (admin)",
        responses={200: r.SessionList},
        tag="users",
        query=("user",),
    ),
    Route(
        "DELETE",
        "/api/v1/sessions/{id}",
        users.revoke_session,
        "End a session: one's own, or any (admin)",
        responses={204: NO_CONTENT, 404: "no such session"},
        tag="users",
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
            409: "nothing_to_publish, draft_changed, approval_required, or lock_lost: retry",
            413: "release_too_large",
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
        {
            201: r.Release,
            404: "no such version",
            409: "nothing_to_publish, approval_required, or lock_lost: retry",
        },
        tag="releases",
        body_optional=True,
        links=(Link(201, "get_release", _RELEASE),),
    ),
    Route(
        "GET",
        f"{ENV}/gray",
        gray.get_gray,
        "The active gray release, and how many live instances it reaches",
        responses={200: r.GrayRelease, 404: "no_gray, or no such app or env"},
        tag="gray",
    ),
    Route(
        "POST",
        f"{ENV}/gray/preview",
        gray.preview_gray,
        "How many live instances a rule would take, and which (nothing changes)",
        s.GrayPreviewBody,
        {200: r.GrayPreview, 404: "no such app or env"},
        tag="gray",
    ),
    Route(
        "POST",
        f"{ENV}/gray",
        gray.start_gray,
        "Publish the draft to the instances a rule matches only",
        s.StartGrayBody,
        {
            201: r.Release,
            409: "nothing_to_publish, draft_changed, approval_required, gray_active, conflict "
            "(no release yet), or lock_lost: retry",
            413: "release_too_large",
            503: "lock_timeout, or the store or coordinator is unavailable",
        },
        tag="gray",
        links=(Link(201, "get_gray", SAME_ENV),),
    ),
    Route(
        "PATCH",
        f"{ENV}/gray",
        gray.widen_gray,
        "Widen the active gray release's rule",
        s.WidenGrayBody,
        {200: r.Release, 404: "no_gray", 409: "gray_narrowing, or lock_lost: retry"},
        tag="gray",
    ),
    Route(
        "POST",
        f"{ENV}/gray/promote",
        gray.promote_gray,
        "Make the gray release everyone's",
        s.GrayCourseBody,
        {200: r.Release, 404: "no_gray", 409: "lock_lost: retry"},
        tag="gray",
        body_optional=True,
    ),
    Route(
        "POST",
        f"{ENV}/gray/abandon",
        gray.abandon_gray,
        "Everyone back to the main release's items, as a new release",
        s.GrayCourseBody,
        {201: r.Release, 404: "no_gray", 409: "lock_lost: retry"},
        tag="gray",
        body_optional=True,
    ),
    Route(
        "GET",
        f"{ENV}/instances",
        instances.list_instances,
        "Every instance of the env on every replica, and which version each runs",
        responses={200: r.InstanceList, 404: "no such app or env"},
        tag="instances",
        query=("label", "version", "replica", "transport"),
    ),
    # env and app management, export and import
    Route(
        "PATCH",
        "/api/v1/apps/{app}",
        apps.update_app,
        "Edit an app's description (owner)",
        s.PatchAppBody,
        {200: r.App, 404: "no such app"},
        tag="apps",
    ),
    Route(
        "DELETE",
        ENV,
        apps.delete_env,
        "Delete an env and its history (owner)",
        responses={204: NO_CONTENT, 404: "no such app or env", 409: "last_env"},
        tag="apps",
    ),
    Route(
        "POST",
        f"{ENV}/discard",
        items.discard_draft,
        "The draft back to the latest release",
        responses={200: r.DiscardedDraft},
        tag="draft",
    ),
    Route(
        "GET",
        "/api/v1/apps/{app}/export",
        transfer.export_app,
        "The app with every env's draft (owner)",
        responses={200: r.ExportDocument, 404: "no such app"},
        tag="apps",
        query=("secrets",),
    ),
    Route(
        "POST",
        "/api/v1/apps/import",
        transfer.import_app,
        "Create or merge an app from an export document (admin)",
        s.ExportDocumentBody,
        {200: r.AppImported, 201: r.AppImported, 404: "no such app (merge)", 409: "exists"},
        tag="apps",
        query=(
            Param(
                "mode",
                {"type": "string", "enum": ["create", "merge"]},
                "create a new app (default), or merge into an existing one",
            ),
        ),
    ),
    Route(
        "POST",
        f"{ENV}/import",
        transfer.import_env,
        "A json, properties, yaml or dotenv file into the draft",
        responses={
            200: r.EnvImported,
            400: "invalid_import",
            413: "too_many_items, draft_too_large",
        },
        tag="draft",
        query=(
            Param(
                "format",
                {"type": "string", "enum": ["json", "properties", "yaml", "dotenv"]},
                "the file's format",
                required=True,
            ),
            Param(
                "mode",
                {"type": "string", "enum": ["merge", "replace"]},
                "set these keys (default), or make the draft exactly the file",
            ),
            "dry_run",
        ),
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
        "Who changed what (admin, or the app's viewers with app=)",
        responses={200: r.AuditLog},
        tag="ops",
        query=("app", "actor", "action", "limit", "before"),
    ),
    Route(
        "GET",
        "/api/v1/apps/{app}/access-keys",
        access_keys.list_access_keys,
        "The app's Apollo access keys, never their secrets (owner)",
        responses={200: r.AccessKeyList},
        tag="apps",
    ),
    Route(
        "POST",
        "/api/v1/apps/{app}/access-keys",
        access_keys.create_access_key,
        "A new Apollo access key; its secret is shown once (owner)",
        responses={201: r.NewAccessKey, 409: "limit_exceeded: the app has 5 keys"},
        tag="apps",
        links=(
            Link(
                201, "delete_access_key", {"app": "$request.path.app", "id": "$response.body#/id"}
            ),
        ),
    ),
    Route(
        "DELETE",
        "/api/v1/apps/{app}/access-keys/{id}",
        access_keys.delete_access_key,
        "Delete an Apollo access key: reads it signs are refused (owner)",
        responses={204: NO_CONTENT, 404: "no such app or access key"},
        tag="apps",
    ),
    # approvals: env settings and release requests
    Route(
        "GET",
        ENV,
        envs.get_env,
        "An env's settings, latest version and draft revision",
        responses={200: r.Env, 404: "no such app or env"},
        tag="apps",
    ),
    Route(
        "PATCH",
        ENV,
        envs.update_env,
        "Change an env's settings (owner)",
        s.UpdateEnvBody,
        {200: r.Env, 404: "no such app or env"},
        tag="apps",
    ),
    Route(
        "GET",
        f"{ENV}/release-requests",
        requests.list_release_requests,
        "Release requests, newest first",
        responses={200: r.ReleaseRequestList, 404: "no such app or env"},
        tag="requests",
        query=(
            "status",
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "at most this many"),
            "before",
        ),
    ),
    Route(
        "POST",
        f"{ENV}/release-requests",
        requests.create_release_request,
        "Request a release of the draft, or a rollback; freezes its snapshot",
        s.CreateReleaseRequestBody,
        {
            201: r.ReleaseRequest,
            404: "no such app, env or version",
            409: "draft_changed, nothing_to_publish",
            413: "release_too_large",
        },
        tag="requests",
    ),
    Route(
        "GET",
        f"{ENV}/release-requests/{{id}}",
        requests.get_release_request,
        "One release request",
        responses={200: r.ReleaseRequest, 404: "no such request"},
        tag="requests",
    ),
    Route(
        "POST",
        f"{ENV}/release-requests/{{id}}/approve",
        requests.approve_release_request,
        "Approve: publish exactly the frozen snapshot (publisher, not the author)",
        s.DecideReleaseRequestBody,
        {
            201: r.Release,
            403: "self_approval",
            404: "no such request",
            409: "stale_request, request_decided",
        },
        tag="requests",
        body_optional=True,
    ),
    Route(
        "POST",
        f"{ENV}/release-requests/{{id}}/reject",
        requests.reject_release_request,
        "Reject a pending request (publisher)",
        s.DecideReleaseRequestBody,
        {200: r.ReleaseRequest, 404: "no such request", 409: "request_decided"},
        tag="requests",
        body_optional=True,
    ),
    Route(
        "DELETE",
        f"{ENV}/release-requests/{{id}}",
        requests.withdraw_release_request,
        "Withdraw a pending request (its author, or an admin)",
        responses={204: NO_CONTENT, 404: "no such request", 409: "request_decided"},
        tag="requests",
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
