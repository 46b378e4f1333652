"""Who a read through a compatible API (Apollo, Spring Cloud Config, Nacos) acts as.

The protocols carry credentials their own way (an Apollo signature, HTTP Basic, a Nacos
accessToken); each edge module turns its way into an API token's secret, or none, and asks
here. The answer is a principal with read rights on the app, or an AppError that the edge
module answers in its protocol's terms (401, 403).
"""

from __future__ import annotations

from server.domain.auth import AuthService
from server.domain.context import DomainContext
from server.domain.scopes import Permission, Principal
from server.errors import AppError, ErrorCode

ANONYMOUS_READER = Principal(name="anonymous", kind="system")
"""A reader without a credential of an app with anonymous_read: it may read, and never sees a
secret value in clear (it has no rights, so may_see() says no)."""


class CompatReads:
    """The access rule of every compatible read, in one place."""

    def __init__(self, ctx: DomainContext, auth: AuthService) -> None:
        self.ctx = ctx
        self.auth = auth

    async def reader(self, app: str, secret: str | None) -> Principal:
        """The principal that reads app: the token's (401 when it is not valid, 403 without
        read rights on app), else ANONYMOUS_READER when the app allows it, else 401.

        `app` must be the canonical app name the protocol's handler will read: the check and
        the read are about the same app, whatever spelling the request used.
        """
        if secret is not None:
            principal = await self.auth.authenticate(secret)
            principal.require(app, Permission.READ_CONFIG)
            return principal
        if await self.ctx.anonymous_reads.allowed(self.ctx.store, app):
            return ANONYMOUS_READER
        # The same answer whether or not the app exists: nothing tells which apps do.
        raise AppError(
            ErrorCode.UNAUTHORIZED, "a credential with read access to the app is required"
        )

    async def may_read_anonymously(self, app: str) -> bool:
        """True when app lets the compatible APIs read it without a credential."""
        return await self.ctx.anonymous_reads.allowed(self.ctx.store, app)
