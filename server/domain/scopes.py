"""Who a request acts as, and what it may do: roles per app for users, scopes for tokens.

Every permission check in the domain goes through `Principal.require(app, Permission.X)`;
what each role and each token scope allows is the two tables below, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from server.errors import AppError, ErrorCode

ADMIN = "admin"
ANY_APP = "*"
SCOPE_PATTERN = re.compile(r"admin|(?:read|write):[a-z0-9][a-z0-9_.-]{0,63}", re.ASCII)
SCOPE_RULE = "a scope is admin, read:APP or write:APP with APP a valid app name"
ROLE_APP_PATTERN = re.compile(r"\*|[a-z0-9][a-z0-9_.-]{0,63}", re.ASCII)


class Permission(StrEnum):
    """What may be done to one app."""

    READ_CONFIG = "read_config"  # published config, watch, the compatible APIs
    VIEW = "view"  # drafts, diffs, releases, requests, instances, the app's audit entries
    EDIT = "edit"  # edit, discard and import the draft, request a release, write secrets
    PUBLISH = "publish"  # publish, roll back, gray releases, approve or reject requests
    SEE_SECRETS = "see_secrets"  # secret values in clear
    MANAGE = "manage"  # envs and their settings, the app itself, access keys, roles on it


class Role(StrEnum):
    """A user's role on an app; each includes the ones before it."""

    VIEWER = "viewer"
    EDITOR = "editor"
    PUBLISHER = "publisher"
    OWNER = "owner"


_VIEWER = frozenset({Permission.READ_CONFIG, Permission.VIEW})
_EDITOR = _VIEWER | {Permission.EDIT}
_PUBLISHER = _EDITOR | {Permission.PUBLISH, Permission.SEE_SECRETS}

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.VIEWER: _VIEWER,
        Role.EDITOR: _EDITOR,
        Role.PUBLISHER: _PUBLISHER,
        Role.OWNER: _PUBLISHER | {Permission.MANAGE},
    }
)

# An API token's `read:APP` and `write:APP` scopes.
SCOPE_PERMISSIONS: Mapping[str, frozenset[Permission]] = MappingProxyType(
    {
        "read": frozenset({Permission.READ_CONFIG, Permission.SEE_SECRETS}),
        "write": _PUBLISHER,
    }
)

# The role a permission takes at least, for messages ("needs editor on app shop").
_LEAST_ROLE = {
    permission: next(role for role in Role if permission in ROLE_PERMISSIONS[role])
    for permission in Permission
}


def _show(value: object) -> str:
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    return repr(value[:80]) + ("…" if len(value) > 80 else "")


def parse_scopes(values: object) -> tuple[str, ...]:
    """A non-empty JSON list of valid scope strings, duplicates dropped, order kept."""
    if not isinstance(values, list) or not values:
        raise AppError(ErrorCode.INVALID_SCOPE, f"scopes must be a non-empty list; {SCOPE_RULE}")
    seen: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str) or SCOPE_PATTERN.fullmatch(value) is None:
            raise AppError(
                ErrorCode.INVALID_SCOPE, f"scope {_show(value)} is invalid; {SCOPE_RULE}"
            )
        seen[value] = None
    return tuple(seen)


def parse_roles(values: object) -> dict[str, Role]:
    """A JSON object {APP or "*": role}, at most 1,000 entries, every role known."""
    if not isinstance(values, dict):
        raise AppError(ErrorCode.INVALID_ROLE, 'roles must be an object like {"shop":"editor"}')
    if len(values) > 1000:
        raise AppError(ErrorCode.INVALID_ROLE, "a user has at most 1000 roles")
    roles: dict[str, Role] = {}
    for app, role in values.items():
        if ROLE_APP_PATTERN.fullmatch(app) is None:
            raise AppError(ErrorCode.INVALID_ROLE, f"{_show(app)} is neither an app name nor '*'")
        try:
            roles[app] = Role(role)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise AppError(
                ErrorCode.INVALID_ROLE, f"role {_show(role)} does not exist; roles are {known}"
            ) from None
    return dict(sorted(roles.items()))


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user (session or CLI) with roles, or an API token with scopes."""

    name: str
    scopes: frozenset[str] = frozenset()
    token_id: int | None = None
    kind: str = "api"  # "session", "password" (a user on one call), "api", "cli" or "system"
    roles: Mapping[str, Role] = field(default_factory=lambda: MappingProxyType({}))
    admin: bool = False
    user: str | None = None  # the user behind a session; None for API tokens and the CLI
    rights_as_of: str = ""  # the user's changed_at when this principal was read

    # A property, not a method: `if principal.is_admin:` on a method would always be true.
    @property
    def is_admin(self) -> bool:
        """True for an admin user or a token with the admin scope: everything is allowed."""
        return self.admin or ADMIN in self.scopes

    @property
    def actor(self) -> str:
        """How the audit names this principal: user:NAME, token:NAME#ID or cli."""
        if self.kind == "cli":
            return "cli"
        if self.user is not None:
            return f"user:{self.user}"
        if self.kind == "api" and self.token_id is not None:
            return f"{self.name}#{self.token_id}"
        return self.name

    def role(self, app: str) -> Role | None:
        """The user's role on app: its own entry, else the `*` entry."""
        return self.roles.get(app) or self.roles.get(ANY_APP)

    def permissions(self, app: str) -> frozenset[Permission]:
        """Everything this principal may do to app."""
        if self.is_admin:
            return frozenset(Permission)
        allowed: frozenset[Permission] = frozenset()
        role = self.role(app)
        if role is not None:
            allowed |= ROLE_PERMISSIONS[role]
        for kind in ("read", "write"):
            if f"{kind}:{app}" in self.scopes:
                allowed |= SCOPE_PERMISSIONS[kind]
        return allowed

    def may(self, app: str, permission: Permission) -> bool:
        """True when this principal has permission on app."""
        return permission in self.permissions(app)

    def require(self, app: str, permission: Permission) -> None:
        """Raise 403 forbidden unless this principal has permission on app."""
        if not self.may(app, permission):
            needs = f"role {_LEAST_ROLE[permission].value}"
            if permission in SCOPE_PERMISSIONS["read"]:
                needs += " or read:APP"
            elif permission in SCOPE_PERMISSIONS["write"]:
                needs += " or write:APP"
            raise AppError(
                ErrorCode.FORBIDDEN,
                f"{self.name} needs {needs} for {permission.value} on app {_show(app)}",
            )

    def visible_apps(self, apps: Iterable[str]) -> list[str]:
        """The names in apps this principal may see at all, in their order."""
        return [app for app in apps if self.may(app, Permission.READ_CONFIG)]

    def require_admin(self) -> None:
        """Raise 403 forbidden unless this principal is an admin."""
        if not self.is_admin:
            raise AppError(ErrorCode.FORBIDDEN, f"{self.name} needs to be an admin")
