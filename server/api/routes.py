"""The route table: what is registered and what the OpenAPI document describes, from one list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from server.api import (
    apps,
    auth,
    config,
    envs,
    items,
    openapi,
    ops,
    releases,
    requests,
    transfer,
    users,
)
from server.api import schemas as s
from server.middleware import CALLER, PUBLIC, WEBSOCKET, Policy, declare
from server.watch import http as watch_http

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENV = "/api/v1/apps/{app}/envs/{env}"


@dataclass(frozen=True)
class Route:
    """One registered route: who may call it, and its documentation."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    policy: Policy = CALLER
    tag: str = "config"
    query: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The route name: the handler's name."""
        return self.handler.__name__


# The config read is the hot path: registered first, it is the first route tried.
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"{ENV}/config",
        config.get_config,
        "Latest release; ETag, formats, long poll",
        responses={200: "config", 304: "not modified", 404: "never published"},
        query=("format", "after", "wait"),
    ),
    Route("GET", "/healthz", ops.healthz, "Process is up", policy=PUBLIC, tag="ops"),
    Route(
        "GET",
        "/readyz",
        ops.readyz,
        "Store and coordinator answer",
        responses={200: "ready", 503: "not ready"},
        policy=PUBLIC,
        tag="ops",
    ),
    Route("GET", "/metrics", ops.get_metrics, "Prometheus metrics", policy=PUBLIC, tag="ops"),
    Route(
        "POST",
        "/api/v1/login",
        auth.login,
        "Sign in; returns a session token",
        s.LoginBody,
        {200: "token", 401: "wrong credentials"},
        policy=PUBLIC,
        tag="auth",
    ),
    Route(
        "POST",
        "/api/v1/logout",
        auth.logout,
        "End the caller's session",
        responses={204: "signed out"},
        tag="auth",
    ),
    Route("GET", "/api/v1/me", auth.whoami, "The caller and its scopes", tag="auth"),
    Route(
        "POST",
        "/api/v1/tokens",
        auth.create_token,
        "Create an API token (admin)",
        s.CreateTokenBody,
        {201: "token with its secret, shown once"},
        tag="auth",
    ),
    Route("GET", "/api/v1/tokens", auth.list_tokens, "List API tokens (admin)", tag="auth"),
    Route(
        "DELETE",
        "/api/v1/tokens/{id}",
        auth.revoke_token,
        "Revoke a token (admin)",
        responses={204: "revoked"},
        tag="auth",
    ),
    # users and sessions
    Route("GET", "/api/v1/users", users.list_users, "Every user (admin)", tag="users"),
    Route(
        "POST",
        "/api/v1/users",
        users.create_user,
        "Create a user (admin)",
        s.CreateUserBody,
        {201: "created", 409: "exists"},
        tag="users",
    ),
    Route("GET", "/api/v1/users/{name}", users.get_user, "One user (admin, or self)", tag="users"),
    Route(
        "PATCH",
        "/api/v1/users/{name}",
        users.patch_user,
        "Change a user's admin flag, roles or disabled state (admin)",
        s.PatchUserBody,
        {200: "user", 409: "last_admin"},
        tag="users",
    ),
    Route(
        "PUT",
        "/api/v1/users/{name}/password",
        users.set_password,
        "Change one's own password, or reset anyone's (admin)",
        s.PasswordBody,
        {204: "changed; the user's other sessions end", 403: "wrong_password"},
        tag="users",
    ),
    Route(
        "DELETE",
        "/api/v1/users/{name}",
        users.delete_user,
        "Delete a user (admin)",
        responses={204: "deleted", 409: "last_admin"},
        tag="users",
    ),
    Route(
        "GET",
        "/api/v1/sessions",
        users.list_sessions,
        "Live sign-in sessions: one's own, or anyone's (admin)",
        tag="users",
        query=("user",),
    ),
    Route(
        "DELETE",
        "/api/v1/sessions/{id}",
        users.revoke_session,
        "End a session: one's own, or any (admin)",
        responses={204: "ended"},
        tag="users",
    ),
    Route("GET", "/api/v1/apps", apps.list_apps, "Apps the caller may see", tag="apps"),
    Route(
        "POST",
        "/api/v1/apps",
        apps.create_app,
        "Create an app",
        s.CreateAppBody,
        {201: "created", 409: "exists"},
        tag="apps",
    ),
    Route("GET", "/api/v1/apps/{app}", apps.get_app, "One app", tag="apps"),
    Route(
        "DELETE",
        "/api/v1/apps/{app}",
        apps.delete_app,
        "Delete an app and its history",
        responses={204: "deleted"},
        tag="apps",
    ),
    Route(
        "POST",
        "/api/v1/apps/{app}/envs",
        apps.create_env,
        "Add an env",
        s.CreateEnvBody,
        {201: "created", 409: "exists"},
        tag="apps",
    ),
    Route("GET", f"{ENV}/items", items.list_items, "The draft", tag="draft"),
    Route(
        "PATCH",
        f"{ENV}/items",
        items.patch_items,
        "Many edits, all or none",
        s.PatchItemsBody,
        tag="draft",
    ),
    Route(
        "GET",
        f"{ENV}/items/{{key}}",
        items.get_item,
        "One draft item; ETag = revision",
        tag="draft",
    ),
    Route(
        "PUT",
        f"{ENV}/items/{{key}}",
        items.put_item,
        "Create or replace an item",
        s.PutItemBody,
        {200: "replaced", 201: "created", 412: "If-Match mismatch"},
        tag="draft",
    ),
    Route(
        "DELETE",
        f"{ENV}/items/{{key}}",
        items.delete_item,
        "Remove an item from the draft",
        responses={204: "deleted", 412: "If-Match mismatch"},
        tag="draft",
    ),
    Route("GET", f"{ENV}/diff", items.get_diff, "Draft against the latest release", tag="draft"),
    Route(
        "POST",
        f"{ENV}/releases",
        releases.publish_release,
        "Publish the draft",
        s.PublishBody,
        {
            201: "release",
            409: "nothing_to_publish, draft_changed, approval_required",
            413: "release_too_large",
        },
        tag="releases",
    ),
    Route(
        "GET",
        f"{ENV}/releases",
        releases.list_releases,
        "Releases, newest first",
        tag="releases",
        query=("limit", "before"),
    ),
    Route(
        "GET", f"{ENV}/releases/{{version}}", releases.get_release, "One release", tag="releases"
    ),
    Route(
        "POST",
        f"{ENV}/releases/{{version}}/rollback",
        releases.rollback_release,
        "New release with an earlier snapshot",
        s.RollbackBody,
        {201: "release", 404: "no such version", 409: "nothing_to_publish, approval_required"},
        tag="releases",
    ),
    # env and app management, export and import
    Route(
        "PATCH",
        "/api/v1/apps/{app}",
        apps.update_app,
        "Edit an app's description (owner)",
        s.PatchAppBody,
        tag="apps",
    ),
    Route(
        "DELETE",
        ENV,
        apps.delete_env,
        "Delete an env and its history (owner)",
        responses={204: "deleted", 409: "last_env"},
        tag="apps",
    ),
    Route(
        "POST",
        f"{ENV}/discard",
        items.discard_draft,
        "The draft back to the latest release",
        tag="draft",
    ),
    Route(
        "GET",
        "/api/v1/apps/{app}/export",
        transfer.export_app,
        "The app with every env's draft (owner)",
        tag="apps",
        query=("secrets",),
    ),
    Route(
        "POST",
        "/api/v1/apps/import",
        transfer.import_app,
        "Create or merge an app from an export document (admin)",
        s.ExportDocumentBody,
        {200: "merged", 201: "created", 409: "exists"},
        tag="apps",
        query=("mode",),
    ),
    Route(
        "POST",
        f"{ENV}/import",
        transfer.import_env,
        "A json, properties, yaml or dotenv file into the draft",
        responses={200: "imported (or, with dry_run, what would be)", 400: "invalid_import"},
        tag="draft",
        query=("format", "mode", "dry_run"),
    ),
    Route(
        "GET",
        "/api/v1/watch",
        watch_http.watch,
        "WebSocket push channel",
        responses={101: "switching protocols"},
        query=("app", "env", "after"),
        policy=WEBSOCKET,
    ),
    Route(
        "GET", "/api/v1/cluster", ops.get_cluster, "Replicas, etcd members, lock holders", tag="ops"
    ),
    Route(
        "GET",
        "/api/v1/audit",
        ops.list_audit,
        "Who changed what (admin, or the app's viewers with app=)",
        tag="ops",
        query=("app", "actor", "action", "limit", "before"),
    ),
    # approvals: env settings and release requests
    Route(
        "GET",
        ENV,
        envs.get_env,
        "An env's settings, latest version and draft revision",
        responses={200: "env", 404: "no such app or env"},
        tag="apps",
    ),
    Route(
        "PATCH",
        ENV,
        envs.update_env,
        "Change an env's settings (owner)",
        s.UpdateEnvBody,
        {200: "env", 404: "no such app or env"},
        tag="apps",
    ),
    Route(
        "GET",
        f"{ENV}/release-requests",
        requests.list_release_requests,
        "Release requests, newest first",
        responses={200: "requests", 404: "no such app or env"},
        tag="requests",
        query=("status", "limit", "before"),
    ),
    Route(
        "POST",
        f"{ENV}/release-requests",
        requests.create_release_request,
        "Request a release of the draft, or a rollback; freezes its snapshot",
        s.CreateReleaseRequestBody,
        {
            201: "request",
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
        responses={200: "request", 404: "no such request"},
        tag="requests",
    ),
    Route(
        "POST",
        f"{ENV}/release-requests/{{id}}/approve",
        requests.approve_release_request,
        "Approve: publish exactly the frozen snapshot (publisher, not the author)",
        s.DecideReleaseRequestBody,
        {
            201: "release",
            403: "self_approval",
            404: "no such request",
            409: "stale_request, request_decided",
        },
        tag="requests",
    ),
    Route(
        "POST",
        f"{ENV}/release-requests/{{id}}/reject",
        requests.reject_release_request,
        "Reject a pending request (publisher)",
        s.DecideReleaseRequestBody,
        {200: "request", 404: "no such request", 409: "request_decided"},
        tag="requests",
    ),
    Route(
        "DELETE",
        f"{ENV}/release-requests/{{id}}",
        requests.withdraw_release_request,
        "Withdraw a pending request (its author, or an admin)",
        responses={204: "withdrawn", 404: "no such request", 409: "request_decided"},
        tag="requests",
    ),
    Route(
        "GET",
        "/api/openapi.json",
        openapi.get_openapi,
        "This document",
        responses={200: "OpenAPI 3.1"},
        policy=PUBLIC,
        tag="ops",
    ),
)


def add_routes(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    """Register every route under its handler's name, with its policy for the middleware."""
    for route in routes:
        registered = app.router.add_route(route.method, route.path, route.handler, name=route.name)
        declare(app, registered, route.policy)
