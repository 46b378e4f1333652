"""An env's settings (approval_required) and where its draft and releases stand."""

from __future__ import annotations

from server.domain.apps import require_env
from server.domain.context import DomainContext
from server.domain.scopes import Permission, Principal
from server.records import AuditAction, EnvRef, EnvSettings, utc_now
from server.store.queries import Queries


async def _settings(q: Queries, ref: EnvRef, approval_required: bool) -> EnvSettings:
    latest = await q.latest_release(ref.id)
    gray = (latest.version, latest.gray) if latest and latest.gray and latest.gray.active else None
    version = latest.version if latest else None
    return EnvSettings(ref.app, ref.name, approval_required, version, ref.draft_revision, gray)


class EnvService:
    """Read and change one env's settings."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

    async def get_env(self, principal: Principal, app: str, env: str) -> EnvSettings:
        """The env's settings, latest version and draft revision."""
        principal.require(app, Permission.VIEW)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            return await _settings(q, ref, ref.approval_required)

    async def update_env(
        self, principal: Principal, app: str, env: str, approval_required: bool
    ) -> EnvSettings:
        """Turn approvals on or off (owner); audited env.update when it changes anything."""
        principal.require(app, Permission.MANAGE)
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            if ref.approval_required != approval_required:
                await q.set_approval_required(ref.id, approval_required)
                await q.add_audit(
                    utc_now(),
                    principal.actor,
                    AuditAction.ENV_UPDATE,
                    f"{app}/{env}",
                    f"approval_required {'on' if approval_required else 'off'}",
                    app,
                    env,
                )
            return await _settings(q, ref, approval_required)
