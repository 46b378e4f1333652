"""Records shared by every layer: frozen dataclasses and the clock; imports nothing of ours."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> str:
    """The current time as fixed-width RFC 3339 UTC, sortable as text."""
    return datetime.now(UTC).strftime(_TIME_FORMAT)


def utc_after(seconds: float) -> str:
    """The time that many seconds from now, in the format of utc_now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime(_TIME_FORMAT)


@dataclass(frozen=True)
class App:
    """An application and the names of its envs."""

    name: str
    description: str
    envs: tuple[str, ...]
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "name": self.name,
            "description": self.description,
            "envs": list(self.envs),
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class EnvRef:
    """An env row locked or read inside a transaction."""

    id: int
    app: str
    name: str
    draft_revision: int
    fence_epoch: str
    fence_token: int
    # The version its first release follows: the last one of a deleted env of this name.
    version_floor: int = 0


@dataclass(frozen=True)
class Item:
    """One draft item."""

    key: str
    value: str
    comment: str
    revision: int
    updated_at: str
    updated_by: str
    # A secret's value is sealed in the store (server/secretbox.py) and opened by the domain.
    secret: bool = False

    def to_json(self, *, reveal: bool) -> dict[str, Any]:
        """The API shape; a secret's value is null unless reveal (the reader may see secrets)."""
        return {
            "key": self.key,
            "value": self.value if reveal or not self.secret else None,
            "comment": self.comment,
            "secret": self.secret,
            "revision": self.revision,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class Release:
    """An immutable published snapshot of one env."""

    app: str
    env: str
    version: int
    checksum: str
    author: str
    comment: str
    created_at: str
    items: dict[str, str] = field(default_factory=dict)
    rollback_of: int | None = None
    # The keys of secret items. Their values are sealed in the store and in etcd; the
    # published configs in memory hold them opened (server/published.py).
    secret_keys: frozenset[str] = frozenset()

    def summary_json(self) -> dict[str, Any]:
        """The API shape without items (release lists)."""
        return {
            "app": self.app,
            "env": self.env,
            "version": self.version,
            "checksum": self.checksum,
            "author": self.author,
            "comment": self.comment,
            "created_at": self.created_at,
            "rollback_of": self.rollback_of,
        }

    def to_json(self, *, reveal: bool) -> dict[str, Any]:
        """The API shape with items; secret values null unless reveal."""
        return {**self.summary_json(), "items": self.shown_items(reveal=reveal)}

    def shown_items(self, *, reveal: bool) -> Mapping[str, str | None]:
        """The items as a reader sees them: secret values null unless reveal."""
        if reveal or not self.secret_keys:
            return self.items
        return {k: None if k in self.secret_keys else v for k, v in self.items.items()}


@dataclass(frozen=True)
class User:
    """An operator who can sign in."""

    id: int
    name: str
    password_hash: str
    is_admin: bool
    scopes: tuple[str, ...]
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The API shape; never the hash."""
        return {
            "name": self.name,
            "is_admin": self.is_admin,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Token:
    """An API token or a sign-in session; only the secret's hash is stored."""

    id: int
    name: str
    kind: str  # "api" or "session"
    scopes: tuple[str, ...]
    owner: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    def to_json(self) -> dict[str, Any]:
        """The API shape; never the secret or its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "owner": self.owner,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


class AuditAction(StrEnum):
    """Every action an audit entry records, in one table (docs/api-notes.md lists them)."""

    APP_CREATE = "app.create"
    APP_UPDATE = "app.update"
    APP_DELETE = "app.delete"
    APP_IMPORT = "app.import"
    ENV_CREATE = "env.create"
    ENV_UPDATE = "env.update"
    ENV_DELETE = "env.delete"
    ITEM_CREATE = "item.create"
    ITEM_UPDATE = "item.update"
    ITEM_DELETE = "item.delete"
    ITEMS_PATCH = "items.patch"
    DRAFT_DISCARD = "draft.discard"
    DRAFT_IMPORT = "draft.import"
    RELEASE_PUBLISH = "release.publish"
    RELEASE_ROLLBACK = "release.rollback"
    RELEASE_EMERGENCY = "release.emergency"
    REQUEST_CREATE = "request.create"
    REQUEST_APPROVE = "request.approve"
    REQUEST_REJECT = "request.reject"
    REQUEST_WITHDRAW = "request.withdraw"
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action name, not a secret
    TOKEN_REVOKE = "token.revoke"  # noqa: S105
    SESSION_REVOKE = "session.revoke"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    USER_PASSWORD = "user.password"  # noqa: S105 - an action name, not a secret
    USER_DELETE = "user.delete"
    SECRETS_ROTATE = "secrets.rotate"
    LOGIN_OK = "login.ok"
    LOGIN_FAILED = "login.failed"
    LOGIN_LOCKED = "login.locked"


@dataclass(frozen=True)
class AuditEntry:
    """Who changed what, when."""

    id: int
    at: str
    actor: str
    action: str
    app: str | None
    env: str | None
    target: str
    summary: str

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "app": self.app,
            "env": self.env,
            "target": self.target,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class Fence:
    """A publish lock's fencing token: a newer holder has a larger token in the same epoch."""

    epoch: str
    token: int


@dataclass(frozen=True)
class Attempts:
    """Failed sign-ins of one subject (a user name or a client address); epoch seconds."""

    failures: int
    window_start: float
    locked_until: float
