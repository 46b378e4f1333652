"""Request bodies: unknown fields and wrong types are refused at the edge."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
    """POST …/releases."""

    comment: str = ""


class RollbackBody(RequestBody):
    """POST …/releases/{version}/rollback."""

    comment: str = ""


class CreateTokenBody(RequestBody):
    """POST /api/v1/tokens."""

    name: str
    scopes: list[str]
