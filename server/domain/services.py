"""All domain services, built once per application from the shared context."""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.config import AuthSection
from server.domain.access_keys import AccessKeyService
from server.domain.apps import AppService
from server.domain.auth import AuthService
from server.domain.compat import CompatReads
from server.domain.context import DomainContext
from server.domain.drafts import DraftService
from server.domain.envs import EnvService
from server.domain.gray import GrayService
from server.domain.instances import InstanceService
from server.domain.passwords import PasswordPool
from server.domain.releases import ReleaseService
from server.domain.requests import RequestService
from server.domain.scopes import Permission, Principal
from server.domain.throttle import SignInThrottle
from server.domain.transfer import TransferService
from server.domain.users import UserService
from server.domain.validation import validate_app_name
from server.errors import AppError, ErrorCode
from server.records import AuditEntry

MAX_AUDIT_PAGE = 500
AUDIT_ACTION_FILTER = re.compile(r"[a-z_]{1,32}\.(?:\*|[a-z_]{1,32})", re.ASCII)


@dataclass(frozen=True)
class Services:
    """The domain, as the HTTP and WebSocket layers see it."""

    ctx: DomainContext
    apps: AppService
    drafts: DraftService
    releases: ReleaseService
    auth: AuthService
    users: UserService
    transfer: TransferService
    envs: EnvService
    requests: RequestService
    instances: InstanceService
    gray: GrayService
    compat: CompatReads
    access_keys: AccessKeyService

    @classmethod
    def build(cls, ctx: DomainContext, auth: AuthSection) -> Services:
        """Every service over one context."""
        passwords = PasswordPool(auth.password_workers, auth.password_queue)
        releases = ReleaseService(ctx)
        gray = GrayService(ctx, releases)
        auth_service = AuthService(
            ctx,
            auth.session_ttl,
            passwords,
            SignInThrottle(ctx.store, auth.failures_per_address),
        )
        return cls(
            ctx,
            AppService(ctx),
            DraftService(ctx),
            releases,
            auth_service,
            UserService(ctx, passwords),
            TransferService(ctx),
            EnvService(ctx),
            RequestService(ctx, releases, gray),
            InstanceService(ctx),
            gray,
            CompatReads(ctx, auth_service),
            AccessKeyService(ctx),
        )

    def close(self) -> None:
        """Stop the services' worker threads."""
        self.auth.passwords.close()

    async def list_audit(
        self,
        principal: Principal,
        app: str | None,
        limit: int,
        before: int | None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Who changed what, newest first: everything for an admin, one app's entries for its
        viewers."""
        if app is None:
            principal.require_admin()
        else:
            principal.require(validate_app_name(app), Permission.VIEW)
        if action is not None and AUDIT_ACTION_FILTER.fullmatch(action) is None:
            raise AppError(
                ErrorCode.INVALID_REQUEST,
                "action is an audit action (user.create) or a family (user.*)",
            )
        if actor is not None and not 0 < len(actor) <= 255:
            raise AppError(ErrorCode.INVALID_REQUEST, "actor has 1 to 255 characters")
        limit = max(1, min(limit, MAX_AUDIT_PAGE))
        async with self.ctx.store.reader() as q:
            return await q.audit(app, limit, before, actor, action)

    async def env_exists(self, app: str, env: str) -> bool:
        """True when the env exists (for subscriptions to envs never published)."""
        if self.ctx.published.get(app, env) is not None:
            return True
        async with self.ctx.store.reader() as q:
            return await q.env(app, env) is not None
