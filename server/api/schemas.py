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
    """PUT …/items/{key}."""

    value: str
    comment: str | None = None


class PatchItemsBody(RequestBody):
    """PATCH …/items: all edits or none."""

    to_set: dict[str, str] = Field(default_factory=dict, alias="set")
    delete: list[str] = Field(default_factory=list)


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
