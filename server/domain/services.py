"""All domain services, built once per application from the shared context."""

from __future__ import annotations

from dataclasses import dataclass

from server.config import AuthSection
from server.domain.apps import AppService
from server.domain.auth import AuthService
from server.domain.context import DomainContext
from server.domain.drafts import DraftService
from server.domain.passwords import PasswordPool
from server.domain.releases import ReleaseService
from server.domain.scopes import Principal
from server.domain.throttle import SignInThrottle
from server.domain.validation import validate_app_name
from server.records import AuditEntry

MAX_AUDIT_PAGE = 500


@dataclass(frozen=True)
class Services:
    """The domain, as the HTTP and WebSocket layers see it."""

    ctx: DomainContext
    apps: AppService
    drafts: DraftService
    releases: ReleaseService
    auth: AuthService

    @classmethod
    def build(cls, ctx: DomainContext, auth: AuthSection) -> Services:
        """Every service over one context."""
        return cls(
            ctx,
            AppService(ctx),
            DraftService(ctx),
            ReleaseService(ctx),
            AuthService(
                ctx,
                auth.session_ttl,
                PasswordPool(auth.password_workers, auth.password_queue),
                SignInThrottle(ctx.store, auth.failures_per_address),
            ),
        )

    def close(self) -> None:
        """Stop the services' worker threads."""
        self.auth.passwords.close()

    async def list_audit(
        self, principal: Principal, app: str | None, limit: int, before: int | None
    ) -> list[AuditEntry]:
        """Who changed what, newest first."""
        principal.require_admin()
        if app is not None:
            # A filter that no app could match is a mistake, not an empty log.
            app = validate_app_name(app)
        limit = max(1, min(limit, MAX_AUDIT_PAGE))
        async with self.ctx.store.reader() as q:
            return await q.audit(app, limit, before)

    async def env_exists(self, app: str, env: str) -> bool:
        """True when the env exists (for subscriptions to envs never published)."""
        if self.ctx.published.get(app, env) is not None:
            return True
        async with self.ctx.store.reader() as q:
            return await q.env(app, env) is not None
