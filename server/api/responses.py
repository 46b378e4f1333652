"""The shapes of the JSON answers, for the OpenAPI document (handlers build the dicts themselves).

Open objects: every field listed is always sent; a field added later is allowed by the schema
until the model lists it. Nullable fields are `X | None` without a default, so that they are
required and may be null.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Answer(BaseModel):
    """A JSON answer's schema: every field required, extra fields allowed."""


class ErrorDetail(Answer):
    """The code (docs/api-notes.md lists them all) and a human message."""

    code: str = Field(pattern=r"^[a-z_]+$")
    message: str


class Error(Answer):
    """`{"error":{"code","message"}}`: every non-2xx JSON answer."""

    error: ErrorDetail


class Health(Answer):
    """GET /healthz."""

    status: str


class Readiness(Answer):
    """GET /readyz: each check `ok` or `unavailable`."""

    status: str
    checks: dict[str, str]


class SignedIn(Answer):
    """POST /api/v1/login: a session token usable as a bearer token until it expires."""

    token: str
    expires_at: str


class Me(Answer):
    """GET /api/v1/me: a user's admin flag and roles, or a token's scopes."""

    name: str
    kind: str
    admin: bool
    roles: dict[str, str]
    scopes: list[str]


class Token(Answer):
    """An API token as listed: never its secret."""

    id: int
    name: str
    scopes: list[str]
    owner: str
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    revoked: bool


class NewToken(Token):
    """A created token with its secret, shown once."""

    token: str


class TokenList(Answer):
    """GET /api/v1/tokens."""

    tokens: list[Token]


class AccessKey(Answer):
    """An app's Apollo access key as listed: never its secret."""

    id: int
    created_at: str
    created_by: str


class AccessKeyList(Answer):
    """GET /api/v1/apps/{app}/access-keys, oldest first."""

    access_keys: list[AccessKey]


class NewAccessKey(Answer):
    """A created access key with its secret (32 hex characters), shown once."""

    id: int
    secret: str
    created_at: str


class App(Answer):
    """An app and the names of its envs."""

    name: str
    description: str
    envs: list[str]
    created_at: str


class AppList(Answer):
    """GET /api/v1/apps."""

    apps: list[App]


class Env(Answer):
    """One env and its settings (docs/api.md: GET /apps/{app}/envs/{env})."""

    app: str
    name: str
    approval_required: bool
    latest_version: int | None
    draft_revision: int
    gray: dict[str, Any] | None


class User(Answer):
    """A user as listed (docs/api.md: /users); never a password or its hash."""

    name: str
    admin: bool
    roles: dict[str, str]
    disabled: bool
    created_at: str
    last_login_at: str | None


class UserList(Answer):
    """GET /api/v1/users."""

    users: list[User]


class Session(Answer):
    """A sign-in session (docs/api.md: /sessions); never its secret."""

    id: int
    user: str
    created_at: str
    expires_at: str
    last_used_at: str | None
    address: str | None


class SessionList(Answer):
    """GET /api/v1/sessions."""

    sessions: list[Session]


class Item(Answer):
    """One draft item; its revision is its ETag."""

    key: str
    value: str
    comment: str
    revision: int
    updated_at: str
    updated_by: str


class Draft(Answer):
    """GET …/items: the draft at its revision."""

    draft_revision: int
    items: list[Item]


class DiscardedDraft(Answer):
    """POST …/discard: the draft as it is now."""

    draft_revision: int
    items: list[Item]


class Patched(Answer):
    """PATCH …/items: the new draft revision and the keys changed."""

    draft_revision: int
    changed: list[str]


class Change(Answer):
    """A changed item's value before and after (null: a secret the reader may not see)."""

    old: str | None
    new: str | None


class Diff(Answer):
    """GET …/diff: the draft against the latest release (base_version null before the first),
    read at draft_revision (send it to publish or request exactly this)."""

    base_version: int | None
    draft_revision: int
    added: dict[str, str | None]
    changed: dict[str, Change]
    removed: dict[str, str | None]
    secret_keys: list[str]


class GrayState(Answer):
    """A gray release's rule (`labels`, `instances`, `percent`: those it has) and status."""

    rule: dict[str, Any]
    status: str = Field(pattern=r"^(active|promoted|abandoned)$")


class ReleaseSummary(Answer):
    """A release without its items (release lists)."""

    app: str
    env: str
    version: int
    checksum: str
    author: str
    comment: str
    created_at: str
    rollback_of: int | None
    gray: GrayState | None


class Release(ReleaseSummary):
    """A release with its items and which of them are secret."""

    items: dict[str, str | None]
    secret_keys: list[str]


class GrayRelease(Release):
    """GET …/gray: the active gray release and how many live instances it reaches."""

    matched: int


class GrayPreview(Answer):
    """POST …/gray/preview: the live instances a rule would take (ids sorted), of how many."""

    matched: int
    total: int
    instances: list[str]


class ReleaseList(Answer):
    """GET …/releases: newest first."""

    releases: list[ReleaseSummary]


class Config(Answer):
    """GET …/config: the latest release as services read it."""

    app: str
    env: str
    version: int
    checksum: str
    items: dict[str, str]


class Instance(Answer):
    """One instance of an env, as one replica knows it (docs/api.md: GET …/instances)."""

    instance: str
    labels: dict[str, str]
    replica: str
    transport: str
    address: str | None
    connected_at: str
    last_seen: str
    delivered_version: int | None
    applied_version: int | None
    gray: bool


class InstanceSummary(Answer):
    """How many instances are listed, and how many run each version."""

    total: int
    by_version: dict[str, int]


class InstanceList(Answer):
    """GET …/instances: every instance of the env on every replica."""

    instances: list[Instance]
    summary: InstanceSummary


class AuditEntry(Answer):
    """Who changed what, when."""

    id: int
    at: str
    actor: str
    action: str
    app: str | None
    env: str | None
    target: str
    summary: str


class AuditLog(Answer):
    """GET /api/v1/audit: newest first."""

    entries: list[AuditEntry]


class Cluster(Answer):
    """GET /api/v1/cluster: this replica's view; the etcd mode adds its own fields."""

    mode: str
    replicas: list[dict[str, Any]]
    etcd_members: list[dict[str, Any]]
    lock_holders: list[dict[str, Any]]
    subscribers: int


class OpenApiDocument(Answer):
    """GET /api/openapi.json: this document."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class ReleaseRequest(Answer):
    """A release request (docs/api.md: release requests)."""

    id: int
    app: str
    env: str
    author: str
    comment: str
    status: str
    base_version: int | None
    draft_revision: int | None
    rollback_to: int | None
    gray: dict[str, Any] | None
    diff: dict[str, Any]
    created_at: str
    decided_by: str | None
    decided_at: str | None
    decision_comment: str | None
    release_version: int | None


class ReleaseRequestList(Answer):
    """GET …/release-requests."""

    requests: list[ReleaseRequest]


class ExportItem(Answer):
    """One item of an export document; a secret's value is null unless included."""

    key: str
    value: str | None
    comment: str
    secret: bool


class ExportEnv(Answer):
    """One env of an export document: its draft."""

    items: list[ExportItem]


class ExportDocument(Answer):
    """GET /api/v1/apps/{app}/export."""

    kind: str
    version: int
    exported_at: str
    app: str
    description: str
    envs: dict[str, ExportEnv]


class KeysChanged(Answer):
    """What an import added, changed and removed, by key."""

    added: list[str]
    changed: list[str]
    removed: list[str]


class AppImported(Answer):
    """POST /api/v1/apps/import: per env, what changed."""

    app: str
    envs: dict[str, KeysChanged]


class EnvImported(KeysChanged):
    """POST …/envs/{env}/import: the draft revision after it (before, on a dry run)."""

    draft_revision: int
