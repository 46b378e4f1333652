"""Request bodies: unknown fields and wrong types are refused at the edge."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Revisions, versions and ids fit a signed 64-bit column with room to spare.
MAX_NUMBER = 2**62


class RequestBody(BaseModel):
    """Strict, closed JSON objects."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(RequestBody):
    """POST /api/v1/login."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class CreateAppBody(RequestBody):
    """POST /api/v1/apps."""

    name: str
    description: str = ""
    envs: list[str] = Field(default_factory=list, max_length=64)


class CreateEnvBody(RequestBody):
    """POST /api/v1/apps/{app}/envs."""

    name: str


class PutItemBody(RequestBody):
    """PUT …/items/{key}; secret None keeps the item's flag (a new item is not secret)."""

    value: str
    comment: str | None = None
    secret: bool | None = None


class ItemEdit(RequestBody):
    """One item of a batch as an object: `{"value","comment"?,"secret"?}`."""

    value: str
    comment: str | None = None
    secret: bool | None = None


class PatchItemsBody(RequestBody):
    """PATCH …/items: all edits or none; a value is a string or an ItemEdit."""

    to_set: dict[str, str | ItemEdit] = Field(default_factory=dict, alias="set")
    delete: list[str] = Field(default_factory=list)

    def values(self) -> dict[str, str]:
        """Every value set, by key."""
        return {k: v if isinstance(v, str) else v.value for k, v in self.to_set.items()}

    def secrets(self) -> dict[str, bool]:
        """The secret flags given, by key."""
        return {
            k: v.secret
            for k, v in self.to_set.items()
            if isinstance(v, ItemEdit) and v.secret is not None
        }

    def comments(self) -> dict[str, str]:
        """The comments given, by key."""
        return {
            k: v.comment
            for k, v in self.to_set.items()
            if isinstance(v, ItemEdit) and v.comment is not None
        }


class PublishBody(RequestBody):
    """POST …/releases: draft_revision is what the publisher reviewed (409 draft_changed)."""

    comment: str = ""
    draft_revision: int | None = Field(default=None, ge=0, le=MAX_NUMBER)
    emergency: bool = False


class RollbackBody(RequestBody):
    """POST …/releases/{version}/rollback."""

    comment: str = ""
    emergency: bool = False


class CreateTokenBody(RequestBody):
    """POST /api/v1/tokens."""

    name: str
    scopes: list[str]
    expires_in: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)


# users and sessions


class CreateUserBody(RequestBody):
    """POST /api/v1/users."""

    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    admin: bool = False
    roles: dict[str, str] = Field(default_factory=dict)


class PatchUserBody(RequestBody):
    """PATCH /api/v1/users/{name}: only the fields sent change."""

    admin: bool | None = None
    roles: dict[str, str] | None = None
    disabled: bool | None = None


class PasswordBody(RequestBody):
    """PUT /api/v1/users/{name}/password: `current` is required for one's own."""

    password: str = Field(max_length=1024)
    current: str | None = Field(default=None, max_length=1024)


# apps, envs and transfer (export and import)


class PatchAppBody(RequestBody):
    """PATCH /api/v1/apps/{app}; `anonymous_read` comes with the compatible APIs (unknown now)."""

    description: str | None = None


class ExportItemBody(RequestBody):
    """One item of an export document; a secret exported without its value has value null."""

    key: str
    value: str | None
    comment: str = ""
    secret: bool = False


class ExportEnvBody(RequestBody):
    """One env of an export document: its draft."""

    items: list[ExportItemBody] = Field(default_factory=list)


class ExportDocumentBody(RequestBody):
    """POST /api/v1/apps/import: the document GET /api/v1/apps/{app}/export answers."""

    kind: str
    version: int
    exported_at: str | None = None
    app: str
    description: str = ""
    envs: dict[str, ExportEnvBody] = Field(default_factory=dict)


# approvals


class UpdateEnvBody(RequestBody):
    """PATCH …/envs/{env}."""

    approval_required: bool


class CreateReleaseRequestBody(RequestBody):
    """POST …/release-requests: the draft (at draft_revision) or a rollback target."""

    comment: str
    draft_revision: int | None = Field(default=None, ge=0, le=MAX_NUMBER)
    rollback_to: int | None = Field(default=None, ge=1, le=MAX_NUMBER)
    gray: dict[str, Any] | None = None


class DecideReleaseRequestBody(RequestBody):
    """POST …/release-requests/{id}/approve and …/reject."""

    comment: str = ""
