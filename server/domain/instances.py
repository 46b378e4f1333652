"""The instance list of an env: who runs which version, on every replica (from memory)."""

from __future__ import annotations

import re
from typing import Any

from server.domain.apps import require_env
from server.domain.context import DomainContext
from server.domain.scopes import Permission, Principal
from server.domain.validation import validate_app_name, validate_env_name
from server.errors import AppError, ErrorCode
from server.instances import LABEL_KEY_PATTERN, Filters, Transport

_PAIR = rf"{LABEL_KEY_PATTERN.pattern}[=:][^,]*"
LABEL_FILTER = re.compile(rf"{_PAIR}(?:,\s*{_PAIR})*")
"""`?label=k:v,k2:v2`: every pair must match (a value no label has matches nothing)."""
MAX_REPLICA_FILTER = 255


def label_filter(text: str) -> dict[str, str]:
    """The pairs of a `label` filter; a 400 unless it is key:value pairs."""
    if LABEL_FILTER.fullmatch(text) is None:
        raise AppError(
            ErrorCode.INVALID_REQUEST,
            "label is key:value pairs separated by commas (keys as label keys)",
        )
    pairs: dict[str, str] = {}
    for part in text.split(","):
        pair = part.lstrip()
        cut = min(i for i in (pair.find("="), pair.find(":")) if i >= 0)
        pairs[pair[:cut]] = pair[cut + 1 :]
    return pairs


def filters_of(
    label: str | None, version: int | None, replica: str | None, transport: str | None
) -> Filters:
    """The listing filters a request asks for; a 400 for one out of range."""
    if replica is not None and not 0 < len(replica) <= MAX_REPLICA_FILTER:
        raise AppError(ErrorCode.INVALID_REQUEST, "replica has 1 to 255 characters")
    kind: Transport | None = None
    if transport is not None:
        try:
            kind = Transport(transport)
        except ValueError:
            names = ", ".join(t.value for t in Transport)
            raise AppError(ErrorCode.INVALID_REQUEST, f"transport is one of {names}") from None
    return Filters(label_filter(label) if label is not None else {}, version, replica, kind)


class InstanceService:
    """Lists the instances the registry holds for this replica and the others."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

    async def list_instances(
        self, principal: Principal, app: str, env: str, filters: Filters
    ) -> dict[str, Any]:
        """`{"instances","summary"}` of an env (viewer); a 404 for an env that does not exist."""
        app, env = validate_app_name(app), validate_env_name(env)
        principal.require(app, Permission.VIEW)
        if self.ctx.published.get(app, env) is None:
            async with self.ctx.store.reader() as q:
                await require_env(q, app, env)
        listing = self.ctx.instances.listing(app, env, filters)
        gray = self.ctx.published.gray(app, env)
        if gray is not None:
            # In the gray release: it runs the active gray version (it was sent or acked it).
            for shown in listing["instances"]:
                runs = shown["applied_version"] or shown["delivered_version"]
                shown["gray"] = runs == gray.version
        return listing
