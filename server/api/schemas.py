"""Request bodies: unknown fields and wrong types are refused at the edge.

The patterns and lengths in `json_schema_extra` only document (for the OpenAPI document) what
the domain checks, so that a bad name keeps its own error code (`invalid_name`, …).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from server.domain.scopes import SCOPE_PATTERN
from server.domain.validation import KEY_PATTERN, MAX_COMMENT_CHARS, NAME_PATTERN

_NAME = f"^{NAME_PATTERN.pattern}$"
_KEY = f"^{KEY_PATTERN.pattern}$"


def _documented(**schema: Any) -> Any:
    """A field whose constraints the domain checks: shown in the schema, not enforced here."""
    return Field(json_schema_extra=schema)


Name = Annotated[str, _documented(pattern=_NAME)]
Key = Annotated[str, _documented(pattern=_KEY)]
Value = Annotated[str, _documented(description="at most limits.max_value_bytes (64 KiB) in UTF-8")]
Comment = Annotated[str, _documented(maxLength=MAX_COMMENT_CHARS)]


class RequestBody(BaseModel):
    """Strict, closed JSON objects."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(RequestBody):
    """POST /api/v1/login."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class CreateAppBody(RequestBody):
    """POST /api/v1/apps."""

    name: Name
    description: Annotated[str, _documented(maxLength=1000)] = ""
    envs: Annotated[list[Name], _documented(uniqueItems=True)] = Field(
        default_factory=list, max_length=64
    )


class CreateEnvBody(RequestBody):
    """POST /api/v1/apps/{app}/envs."""

    name: Name


class PutItemBody(RequestBody):
    """PUT …/items/{key}."""

    value: Value
    comment: Comment | None = None


class PatchItemsBody(RequestBody):
    """PATCH …/items: all edits or none."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["set"], "properties": {"set": {"minProperties": 1}}},
                {"required": ["delete"], "properties": {"delete": {"minItems": 1}}},
            ]
        }
    )

    to_set: Annotated[dict[str, Value], _documented(propertyNames={"pattern": _KEY})] = Field(
        default_factory=dict, alias="set"
    )
    delete: Annotated[list[Key], _documented(uniqueItems=True)] = Field(default_factory=list)


class PublishBody(RequestBody):
    """POST …/releases."""

    comment: Comment = ""


class RollbackBody(RequestBody):
    """POST …/releases/{version}/rollback."""

    comment: Comment = ""


class CreateTokenBody(RequestBody):
    """POST /api/v1/tokens."""

    name: Name
    scopes: Annotated[
        list[Annotated[str, _documented(pattern=f"^(?:{SCOPE_PATTERN.pattern})$")]],
        _documented(minItems=1),
    ]
