"""Token scopes and the principal a request acts as."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from server.errors import AppError, ErrorCode

ADMIN = "admin"
SCOPE_PATTERN = re.compile(r"admin|(?:read|write):[a-z0-9][a-z0-9_.-]{0,63}", re.ASCII)
SCOPE_RULE = "a scope is admin, read:APP or write:APP with APP a valid app name"


def _show(value: object) -> str:
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    return repr(value[:80]) + ("…" if len(value) > 80 else "")


def parse_scopes(values: object) -> tuple[str, ...]:
    """A non-empty JSON list of valid scope strings, duplicates dropped, order kept."""
    if not isinstance(values, list) or not values:
        raise AppError(ErrorCode.INVALID_SCOPE, f"scopes must be a non-empty list; {SCOPE_RULE}")
    seen: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str) or SCOPE_PATTERN.fullmatch(value) is None:
            raise AppError(
                ErrorCode.INVALID_SCOPE, f"scope {_show(value)} is invalid; {SCOPE_RULE}"
            )
        seen[value] = None
    return tuple(seen)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user session or an API token, with its scopes."""

    name: str
    scopes: frozenset[str]
    token_id: int | None = None
    kind: str = "token"

    # A property, not a method: `if principal.is_admin:` on a method would always be true.
    @property
    def is_admin(self) -> bool:
        """True with the admin scope, which allows everything."""
        return ADMIN in self.scopes

    def can_read(self, app: str) -> bool:
        """True when this principal may read app's published config (write implies read)."""
        return self.is_admin or f"read:{app}" in self.scopes or f"write:{app}" in self.scopes

    def can_write(self, app: str) -> bool:
        """True when this principal may edit, publish and roll back app."""
        return self.is_admin or f"write:{app}" in self.scopes

    def readable_apps(self, apps: Iterable[str]) -> list[str]:
        """The names in apps this principal may read, in their order."""
        return [app for app in apps if self.can_read(app)]

    def require_admin(self) -> None:
        """Raise 403 forbidden unless this principal has the admin scope."""
        if not self.is_admin:
            raise AppError(ErrorCode.FORBIDDEN, f"{self.name} needs the admin scope")

    def require_read(self, app: str) -> None:
        """Raise 403 forbidden unless this principal may read app."""
        if not self.can_read(app):
            raise AppError(
                ErrorCode.FORBIDDEN,
                f"{self.name} needs read:APP or write:APP to read app {_show(app)}",
            )

    def require_write(self, app: str) -> None:
        """Raise 403 forbidden unless this principal may write app."""
        if not self.can_write(app):
            raise AppError(
                ErrorCode.FORBIDDEN, f"{self.name} needs write:APP to change app {_show(app)}"
            )
