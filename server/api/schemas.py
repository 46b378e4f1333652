"""Request bodies: unknown fields and wrong types are refused at the edge.

The patterns and lengths in `json_schema_extra` only document (for the OpenAPI document) what
the domain checks, so that a bad name keeps its own error code (`invalid_name`, …).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from server.domain.gray import (
    MAX_RULE_INSTANCES,
    MAX_RULE_LABEL_VALUE,
    MAX_RULE_LABELS,
    gray_rule,
)
from server.domain.scopes import SCOPE_PATTERN, Role
from server.domain.validation import KEY_PATTERN, MAX_COMMENT_CHARS, NAME_PATTERN
from server.instances import INSTANCE_PATTERN, LABEL_KEY_PATTERN
from server.records import GrayRule

_NAME = f"^{NAME_PATTERN.pattern}$"
_KEY = f"^{KEY_PATTERN.pattern}$"


def _documented(**schema: Any) -> Any:
    """A field whose constraints the domain checks: shown in the schema, not enforced here."""
    return Field(json_schema_extra=schema)


Name = Annotated[str, _documented(pattern=_NAME)]
Key = Annotated[str, _documented(pattern=_KEY)]
Value = Annotated[str, _documented(description="at most limits.max_value_bytes (64 KiB) in UTF-8")]
Comment = Annotated[str, _documented(maxLength=MAX_COMMENT_CHARS)]

Password = Annotated[str, Field(max_length=1024), _documented(minLength=10)]
# A role per app name or "*": what domain.scopes.parse_roles takes.
Roles = Annotated[
    dict[str, str],
    _documented(
        propertyNames={"pattern": f"^(?:\\*|{NAME_PATTERN.pattern})$"},
        additionalProperties={"type": "string", "enum": [role.value for role in Role]},
    ),
]

# Revisions, versions and ids fit a signed 64-bit column with room to spare.
MAX_NUMBER = 2**62


def _whole(value: Any) -> Any:
    # JSON Schema's integer includes 16039.0; strict validation would refuse it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Revision = Annotated[int, Field(ge=0, le=MAX_NUMBER), BeforeValidator(_whole)]
Version = Annotated[int, Field(ge=1, le=MAX_NUMBER), BeforeValidator(_whole)]
Lifetime = Annotated[int, Field(ge=60, le=10 * 365 * 86400), BeforeValidator(_whole)]


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
    """PUT …/items/{key}; secret None keeps the item's flag (a new item is not secret)."""

    value: Value
    comment: Comment | None = None
    secret: bool | None = None


class ItemEdit(RequestBody):
    """One item of a batch as an object: `{"value","comment"?,"secret"?}`."""

    value: Value
    comment: Comment | None = None
    secret: bool | None = None


class PatchItemsBody(RequestBody):
    """PATCH …/items: all edits or none; a value is a string or an ItemEdit."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["set"], "properties": {"set": {"minProperties": 1}}},
                {"required": ["delete"], "properties": {"delete": {"minItems": 1}}},
            ]
        }
    )

    to_set: Annotated[dict[str, Value | ItemEdit], _documented(propertyNames={"pattern": _KEY})] = (
        Field(default_factory=dict, alias="set")
    )
    delete: Annotated[list[Key], _documented(uniqueItems=True)] = Field(default_factory=list)

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

    comment: Comment = ""
    draft_revision: Revision | None = None
    emergency: bool = False


class RollbackBody(RequestBody):
    """POST …/releases/{version}/rollback."""

    comment: Comment = ""
    emergency: bool = False


class CreateTokenBody(RequestBody):
    """POST /api/v1/tokens."""

    name: Name
    scopes: Annotated[
        list[Annotated[str, _documented(pattern=f"^(?:{SCOPE_PATTERN.pattern})$")]],
        _documented(minItems=1),
    ]
    expires_in: Lifetime | None = None


# users and sessions


class CreateUserBody(RequestBody):
    """POST /api/v1/users."""

    name: Name
    password: Password
    admin: bool = False
    roles: Roles = Field(default_factory=dict)


class PatchUserBody(RequestBody):
    """PATCH /api/v1/users/{name}: only the fields sent change."""

    admin: bool | None = None
    roles: Roles | None = None
    disabled: bool | None = None


class PasswordBody(RequestBody):
    """PUT /api/v1/users/{name}/password: `current` is required for one's own."""

    password: Password
    current: str | None = Field(default=None, max_length=1024)


# apps, envs and transfer (export and import)


class PatchAppBody(RequestBody):
    """PATCH /api/v1/apps/{app}: only the fields sent change."""

    description: str | None = None
    anonymous_read: bool | None = None
    """The compatible APIs (Apollo, Spring, Nacos) read the app without a credential."""


class ExportItemBody(RequestBody):
    """One item of an export document; a secret exported without its value has value null."""

    key: Key
    value: str | None
    comment: str = ""
    secret: bool = False


class ExportEnvBody(RequestBody):
    """One env of an export document: its draft."""

    items: list[ExportItemBody] = Field(default_factory=list)


class ExportDocumentBody(RequestBody):
    """POST /api/v1/apps/import: the document GET /api/v1/apps/{app}/export answers."""

    kind: Annotated[str, _documented(enum=["configcenter.export"])]
    version: Annotated[int, _documented(enum=[1])]
    exported_at: str | None = None
    app: Name
    description: str = ""
    envs: dict[str, ExportEnvBody] = Field(default_factory=dict)


# approvals


class UpdateEnvBody(RequestBody):
    """PATCH …/envs/{env}."""

    approval_required: bool


Percent = Annotated[int, Field(ge=0, le=100), BeforeValidator(_whole)]


def _no_nulls(value: Any) -> Any:
    # The rule's parts are left out, never null: `{"labels": null}` is no criterion at all.
    if isinstance(value, dict) and any(v is None for v in value.values()):
        raise ValueError("the rule's labels, instances and percent are left out, never null")
    return value


class GrayRuleBody(RequestBody):
    """Which instances a gray release reaches: any of all these labels, these instance ids,
    or this percent of instance ids (the contract's stable hash); at least one of them."""

    model_config = ConfigDict(
        json_schema_extra={
            "minProperties": 1,
            "properties": {
                "labels": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": MAX_RULE_LABELS,
                    "propertyNames": {"pattern": f"^{LABEL_KEY_PATTERN.pattern}$"},
                    "additionalProperties": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_RULE_LABEL_VALUE,
                    },
                },
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_RULE_INSTANCES,
                    "items": {"type": "string", "pattern": f"^{INSTANCE_PATTERN.pattern}$"},
                },
                "percent": {"type": "integer", "minimum": 0, "maximum": 100},
            },
        }
    )

    labels: dict[str, str] | None = None
    instances: list[str] | None = None
    percent: Percent | None = None

    @model_validator(mode="before")
    @classmethod
    def _parts_not_null(cls, value: Any) -> Any:
        return _no_nulls(value)

    def to_rule(self) -> GrayRule:
        """The rule, checked as the domain takes it (400 for what the schema lets by)."""
        return gray_rule(self.labels, self.instances, self.percent)


class StartGrayBody(RequestBody):
    """POST …/gray: the draft (at draft_revision) to the rule's instances only."""

    comment: Comment = ""
    rule: GrayRuleBody
    draft_revision: Revision | None = None
    emergency: bool = False


class WidenGrayBody(RequestBody):
    """PATCH …/gray: a wider rule."""

    rule: GrayRuleBody


class GrayPreviewBody(RequestBody):
    """POST …/gray/preview: a rule to try on the live instances."""

    rule: GrayRuleBody


class GrayCourseBody(RequestBody):
    """POST …/gray/promote, …/gray/abandon."""

    comment: Comment = ""


class CreateReleaseRequestBody(RequestBody):
    """POST …/release-requests: the draft (at draft_revision; to everyone, or as a gray
    release by the `gray` rule) or a rollback target."""

    # A request of the draft at a revision (gray or not), or of a rollback, not both.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "not": {
                        "required": ["draft_revision", "rollback_to"],
                        "properties": {
                            "draft_revision": {"type": "integer"},
                            "rollback_to": {"type": "integer"},
                        },
                    }
                },
                {
                    "not": {
                        "required": ["gray", "rollback_to"],
                        "properties": {
                            "gray": {"type": "object"},
                            "rollback_to": {"type": "integer"},
                        },
                    }
                },
            ]
        }
    )

    comment: Comment
    draft_revision: Revision | None = None
    rollback_to: Version | None = None
    gray: GrayRuleBody | None = None


class DecideReleaseRequestBody(RequestBody):
    """POST …/release-requests/{id}/approve and …/reject."""

    comment: str = ""
