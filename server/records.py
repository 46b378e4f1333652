"""Records shared by every layer: frozen dataclasses and the clock; imports nothing of ours."""

from __future__ import annotations

import hashlib
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
    # The compatible APIs (Apollo, Spring, Nacos) read it without a credential.
    anonymous_read: bool = False

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "name": self.name,
            "description": self.description,
            "envs": list(self.envs),
            "created_at": self.created_at,
            "anonymous_read": self.anonymous_read,
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
    # Publishes and rollbacks go through an approved release request.
    approval_required: bool = False


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


class GrayStatus(StrEnum):
    """Where a gray release stands: reaching its rule's instances, everyone's, or ended."""

    ACTIVE = "active"
    PROMOTED = "promoted"
    ABANDONED = "abandoned"


def in_percent(app: str, env: str, instance: str, percent: int) -> bool:
    """The contract's stable hash: the same instances stay in as the percent grows."""
    digest = hashlib.sha256(f"{app}/{env}/{instance}".encode()).hexdigest()
    return int(digest, 16) % 100 < percent


@dataclass(frozen=True)
class GrayRule:
    """Which instances a gray release reaches: any of its labels (all pairs), its instance
    ids, or its percent of instance ids. Validated at the edge (server/domain/gray.py)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    instances: frozenset[str] = frozenset()
    percent: int | None = None

    def matches(self, app: str, env: str, instance: str | None, labels: Mapping[str, str]) -> bool:
        """True when an identified instance is in; an anonymous reader never is."""
        if instance is None:
            return False
        if self.labels and all(labels.get(k) == v for k, v in self.labels.items()):
            return True
        if instance in self.instances:
            return True
        return bool(self.percent) and in_percent(app, env, instance, self.percent or 0)

    def narrowed_by(self, wider: GrayRule) -> list[str]:
        """What `wider` would drop from this rule (empty when it only widens it): a label pair
        it adds, an instance it leaves out, a lower percent."""
        if (wider.percent or 0) >= 100:
            return []  # every identified instance
        dropped: list[str] = []
        if self.labels:
            if not wider.labels:
                dropped.append("the labels")
            else:
                added = sorted(k for k in wider.labels if self.labels.get(k) != wider.labels[k])
                dropped += [f"label {k}={wider.labels[k]}" for k in added]
        dropped += [f"instance {i}" for i in sorted(self.instances - wider.instances)]
        if (wider.percent or 0) < (self.percent or 0):
            dropped.append(f"percent {self.percent} to {wider.percent or 0}")
        return dropped

    def to_json(self) -> dict[str, Any]:
        """The API shape: only the criteria it has."""
        shape: dict[str, Any] = {}
        if self.labels:
            shape["labels"] = dict(sorted(self.labels.items()))
        if self.instances:
            shape["instances"] = sorted(self.instances)
        if self.percent is not None:
            shape["percent"] = self.percent
        return shape


@dataclass(frozen=True)
class Gray:
    """The gray part of a release: its rule and status. `step` grows with every change to
    either (widen, promote, abandon), so replicas order states of one version; `main_version`
    is the release everyone else keeps meanwhile, and `main` that release itself where it
    travels with the gray one (in memory, in etcd)."""

    rule: GrayRule
    status: GrayStatus
    step: int
    main_version: int
    main: Release | None = field(default=None, compare=False)

    @property
    def active(self) -> bool:
        """Reaching only its rule's instances."""
        return self.status is GrayStatus.ACTIVE

    def to_json(self) -> dict[str, Any]:
        """The API shape: `{"rule","status"}`."""
        return {"rule": self.rule.to_json(), "status": self.status.value}


def gray_record(gray: Gray) -> dict[str, Any]:
    """How the store and etcd hold a release's gray part (without its main release)."""
    return {
        "rule": gray.rule.to_json(),
        "status": gray.status.value,
        "step": gray.step,
        "main_version": gray.main_version,
    }


def gray_rule_from_record(rule: Any) -> GrayRule:
    """A stored rule (`GrayRule.to_json`); KeyError, TypeError, ValueError for anything else."""
    percent = rule.get("percent")
    return GrayRule(
        labels={str(k): str(v) for k, v in rule.get("labels", {}).items()},
        instances=frozenset(str(i) for i in rule.get("instances", [])),
        percent=int(percent) if percent is not None else None,
    )


def gray_from_record(raw: Any) -> Gray:
    """The gray part of a stored record; KeyError, TypeError, ValueError for anything else."""
    return Gray(
        rule=gray_rule_from_record(raw["rule"]),
        status=GrayStatus(raw["status"]),
        step=int(raw["step"]),
        main_version=int(raw["main_version"]),
    )


Stamp = tuple[int, int]
"""How replicas order an env's published states: (version, gray step)."""


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
    # Set on a gray release (server/domain/gray.py), None on every other.
    gray: Gray | None = None

    @property
    def stamp(self) -> Stamp:
        """(version, gray step): a widen or promote changes the state, not the version."""
        return (self.version, self.gray.step if self.gray is not None else 0)

    @property
    def gray_active(self) -> bool:
        """A gray release reaching only its rule's instances."""
        return self.gray is not None and self.gray.active

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
            "gray": self.gray.to_json() if self.gray is not None else None,
        }

    def to_json(self, *, reveal: bool) -> dict[str, Any]:
        """The API shape with items (secret values null unless reveal) and which are secret."""
        return {
            **self.summary_json(),
            "items": self.shown_items(reveal=reveal),
            "secret_keys": sorted(self.secret_keys),
        }

    def shown_items(self, *, reveal: bool) -> Mapping[str, str | None]:
        """The items as a reader sees them: secret values null unless reveal."""
        if reveal or not self.secret_keys:
            return self.items
        return {k: None if k in self.secret_keys else v for k, v in self.items.items()}


@dataclass(frozen=True)
class User:
    """An operator who can sign in: an admin flag and a role per app (`*` = every app)."""

    id: int
    name: str
    password_hash: str
    is_admin: bool
    roles: Mapping[str, str]
    created_at: str
    disabled: bool = False
    last_login_at: str | None = None
    changed_at: str = ""  # moves with every change to the user's rights or password

    def to_json(self) -> dict[str, Any]:
        """The API shape; never the hash."""
        return {
            "name": self.name,
            "admin": self.is_admin,
            "roles": dict(self.roles),
            "disabled": self.disabled,
            "created_at": self.created_at,
            "last_login_at": self.last_login_at,
        }


@dataclass(frozen=True)
class AccessKey:
    """An app's Apollo access key: its secret sealed as the store holds it."""

    id: int
    app: str
    secret_sealed: str
    created_at: str
    created_by: str

    def to_json(self) -> dict[str, Any]:
        """The API shape: never the secret."""
        return {"id": self.id, "created_at": self.created_at, "created_by": self.created_by}


@dataclass(frozen=True)
class Token:
    """An API token or a sign-in session; only the secret's hash is stored."""

    id: int
    name: str
    kind: str  # "api" or "session"
    scopes: tuple[str, ...]
    owner: str  # who created an API token; the user of a session
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None = None
    address: str | None = None  # where a session signed in from

    def to_json(self) -> dict[str, Any]:
        """The API shape of an API token; never the secret or its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "owner": self.owner,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "revoked": self.revoked_at is not None,
        }

    def session_json(self) -> dict[str, Any]:
        """The API shape of a sign-in session."""
        return {
            "id": self.id,
            "user": self.owner,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "address": self.address,
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
    RELEASE_RESTORE = "release.restore"
    GRAY_START = "gray.start"
    GRAY_WIDEN = "gray.widen"
    GRAY_PROMOTE = "gray.promote"
    GRAY_ABANDON = "gray.abandon"
    STORE_RESTORE = "store.restore"
    REQUEST_CREATE = "request.create"
    REQUEST_APPROVE = "request.approve"
    REQUEST_REJECT = "request.reject"
    REQUEST_WITHDRAW = "request.withdraw"
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action name, not a secret
    TOKEN_REVOKE = "token.revoke"  # noqa: S105
    ACCESS_KEY_CREATE = "access_key.create"
    ACCESS_KEY_DELETE = "access_key.delete"
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


# approvals


@dataclass(frozen=True)
class EnvSettings:
    """An env as GET …/envs/{env} shows it: its settings and where its draft and releases are."""

    app: str
    name: str
    approval_required: bool
    latest_version: int | None
    draft_revision: int
    # The active gray release's version and gray part, if one is active.
    gray: tuple[int, Gray] | None = None

    def to_json(self) -> dict[str, Any]:
        """The API shape; gray is `{"version","rule","status","main_version"}` or null."""
        gray = None
        if self.gray is not None:
            version, part = self.gray
            gray = {"version": version, **part.to_json(), "main_version": part.main_version}
        return {
            "app": self.app,
            "name": self.name,
            "approval_required": self.approval_required,
            "latest_version": self.latest_version,
            "draft_revision": self.draft_revision,
            "gray": gray,
        }


class RequestStatus(StrEnum):
    """Where a release request stands; only a pending one may be decided."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    STALE = "stale"


@dataclass(frozen=True)
class ReleaseRequest:
    """A request to publish a frozen snapshot (draft items, or a rollback target), to
    everyone or, with `gray`, as a gray release to the instances that rule takes."""

    id: int
    app: str
    env: str
    author: str
    comment: str
    status: RequestStatus
    base_version: int | None
    draft_revision: int | None
    rollback_to: int | None
    created_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    decision_comment: str | None = None
    release_version: int | None = None
    gray: GrayRule | None = None
    # {"added","changed","removed"} against the base release; the domain works it out from
    # the snapshots (the store keeps no copy of their values).
    diff: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "id": self.id,
            "app": self.app,
            "env": self.env,
            "author": self.author,
            "comment": self.comment,
            "status": self.status.value,
            "base_version": self.base_version,
            "draft_revision": self.draft_revision,
            "rollback_to": self.rollback_to,
            "gray": self.gray.to_json() if self.gray is not None else None,
            "diff": self.diff,
            "created_at": self.created_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "decision_comment": self.decision_comment,
            "release_version": self.release_version,
        }
