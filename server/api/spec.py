"""The vocabulary a route is described with: its answers, parameters, headers and links.

Most of a route's description is derived (server/api/openapi.py): path parameters from the
names in its path (PATH_PARAMS), query parameters from their names (QUERY_PARAMS), and the
error statuses from its policy, body and path. A route declares only its own answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from server.domain.formats import FORMATS
from server.domain.instances import LABEL_FILTER
from server.domain.validation import KEY_PATTERN, NAME_PATTERN
from server.instances import Transport

NAME = f"^{NAME_PATTERN.pattern}$"
KEY = f"^{KEY_PATTERN.pattern}$"
DIGITS = "^[0-9]{1,18}$"
"""A number in a path or a query: ASCII digits only (common.path_int and int_query)."""
LARGEST_NUMBER = 10**18 - 1
"""The largest number a path or query takes: 18 digits."""


@dataclass(frozen=True)
class Reply:
    """One documented answer of a status: its JSON model or text media types, its headers."""

    description: str
    model: type[BaseModel] | None = None
    media: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Bodies other than JSON (a rendered config, metrics): media type -> schema."""
    headers: tuple[str, ...] = ()
    """Headers always sent (names from HEADERS)."""
    optional_headers: tuple[str, ...] = ()
    bodiless: bool = False
    """True when the answer has no body at all (204, 304, 101)."""

    @property
    def complete(self) -> bool:
        """True when the answer's body is described: a model, text, or none on purpose."""
        return self.model is not None or bool(self.media) or self.bodiless


NO_CONTENT = Reply("done; no body", bodiless=True)

TEXT: Mapping[str, Any] = {"type": "string"}
"""A plain text body."""
FLAT_MAP: Mapping[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
"""A body that parses to one flat mapping of strings (the YAML rendering)."""

Declared = Reply | type[BaseModel] | str
"""What a route's `responses` maps a status to: a Reply, a bare JSON model (described by its
docstring), or for an error status a description (the body is the error envelope)."""


def as_reply(status: int, declared: Declared) -> Reply:
    """The Reply a declaration stands for; a bare string on a success is left incomplete."""
    if isinstance(declared, Reply):
        return declared
    if isinstance(declared, str):
        return Reply(declared)
    description = (declared.__doc__ or declared.__name__).strip().splitlines()[0]
    return Reply(description, declared)


@dataclass(frozen=True)
class Param:
    """A path or query parameter: its JSON schema (strings on the wire)."""

    name: str
    schema: Mapping[str, Any]
    description: str
    required: bool = False


def _integer(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


PATH_PARAMS: dict[str, Param] = {
    "app": Param("app", {"type": "string", "pattern": NAME}, "app name"),
    "env": Param("env", {"type": "string", "pattern": NAME}, "env name"),
    "name": Param("name", {"type": "string", "pattern": NAME}, "user name"),
    "key": Param("key", {"type": "string", "pattern": KEY}, "item key (case-sensitive)"),
    "version": Param("version", {"type": "string", "pattern": DIGITS}, "release version"),
    "id": Param("id", {"type": "string", "pattern": DIGITS}, "numeric id"),
}
"""Every path parameter name a route may use; a new name is added here once."""

QUERY_PARAMS: dict[str, Param] = {
    "format": Param(
        "format", {"type": "string", "enum": list(FORMATS)}, "how to render (default json)"
    ),
    "after": Param(
        "after",
        _integer(0, LARGEST_NUMBER),
        "long poll: answer once the version is greater than this",
    ),
    "wait": Param("wait", _integer(0, 60), "long poll: seconds to wait (default 30); needs after"),
    "limit": Param("limit", _integer(1, 500), "at most this many"),
    "before": Param("before", _integer(1, LARGEST_NUMBER), "page: only those before this one"),
    "app": Param(
        "app", {"type": "string", "pattern": f"^(?:{NAME_PATTERN.pattern})?$"}, "only this app"
    ),
    "env": Param("env", {"type": "string", "pattern": NAME}, "the env to subscribe to"),
    "token": Param("token", {"type": "string"}, "the bearer token, where no header can be set"),
    # The contract's other query parameters (docs/api.md), for the routes that take them; a
    # route whose values differ (`mode`) declares a Param of its own.
    "status": Param(
        "status",
        {"type": "string", "enum": ["pending", "approved", "rejected", "withdrawn", "stale"]},
        "only requests in this state",
    ),
    "user": Param(
        "user", {"type": "string", "pattern": f"^(?:{NAME_PATTERN.pattern})?$"}, "only this user's"
    ),
    "actor": Param(
        "actor", {"type": "string", "minLength": 1, "maxLength": 255}, "only entries by this actor"
    ),
    "action": Param(
        "action",
        {"type": "string", "pattern": r"^[a-z_]{1,32}\.(?:\*|[a-z_]{1,32})$"},
        "only entries of this action (user.create) or family (user.*)",
    ),
    "dry_run": Param(
        "dry_run", {"type": "string", "enum": ["true", "false"]}, "report without changing"
    ),
    "secrets": Param(
        "secrets", {"type": "string", "enum": ["include"]}, "secret values in clear (admin)"
    ),
    # A reader naming itself (as X-Config-Instance / X-Config-Labels): out of pattern it is
    # served and not listed, so any text is accepted here.
    "instance": Param("instance", {"type": "string"}, "the reader's instance id (listed)"),
    "labels": Param("labels", {"type": "string"}, "the reader's labels: k=v,k2=v2"),
    "label": Param(
        "label",
        {"type": "string", "pattern": f"^{LABEL_FILTER.pattern}$"},
        "only instances with every one of these labels: k:v,k2:v2",
    ),
    "version": Param("version", _integer(1, LARGEST_NUMBER), "only instances running this version"),
    "replica": Param(
        "replica", {"type": "string", "minLength": 1, "maxLength": 255}, "only this replica's"
    ),
    "transport": Param(
        "transport",
        {"type": "string", "enum": [t.value for t in Transport]},
        "only instances reaching the server this way",
    ),
}
"""Every query parameter name a route may use; a route names them in `query`."""

HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": 'an item\'s revision ("7") or a release\'s checksum ("sha256:…")',
        "schema": {"type": "string", "pattern": '^"[^"]+"$'},
    },
    "X-Config-Version": {
        "description": "the version of the release answered",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Allow": {
        "description": "the methods the path takes",
        "schema": {"type": "string"},
    },
}
"""Every response header the document names, shared by reference."""


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from one answer to another operation, for stateful testing.

    `parameters` maps the target's parameters to runtime expressions such as
    `$response.body#/name` or `$request.path.app`.
    """

    status: int
    operation: str
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The link's name in the document: the target operation."""
        return self.operation


SAME_ENV = {"app": "$request.path.app", "env": "$request.path.env"}
"""Link parameters that stay in the env of the request."""
