"""Apps and their envs."""

from __future__ import annotations

from server.domain.context import DomainContext
from server.domain.scopes import Permission, Principal
from server.domain.validation import validate_app_name, validate_description, validate_env_name
from server.errors import AppError, ErrorCode, not_found
from server.events import AppDeleted
from server.records import App, AuditAction, EnvRef, utc_now
from server.store.db import IntegrityError
from server.store.queries import Queries

DEFAULT_ENV = "default"
MAX_ENVS_PER_APP = 64


async def require_env(q: Queries, app: str, env: str, lock: bool = False) -> EnvRef:
    """The env row, or a 404 naming what is missing."""
    ref = await q.env(app, env, lock=lock)
    if ref is None:
        if await q.app_id(app) is None:
            raise not_found(f"app {app!r}")
        raise not_found(f"env {env!r} of app {app!r}")
    return ref


class AppService:
    """Create, list and delete apps; add envs."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

    async def list_apps(self, principal: Principal) -> list[App]:
        """The apps the caller may read."""
        async with self.ctx.store.reader() as q:
            apps = await q.list_apps()
        return [app for app in apps if principal.may(app.name, Permission.READ_CONFIG)]

    async def get_app(self, principal: Principal, name: str) -> App:
        """One app the caller may read."""
        principal.require(name, Permission.READ_CONFIG)
        async with self.ctx.store.reader() as q:
            app = await q.get_app(name)
        if app is None:
            raise not_found(f"app {name!r}")
        return app

    async def create_app(
        self, principal: Principal, name: str, description: str, envs: list[str]
    ) -> App:
        """A new app with its envs (one named default when none are given)."""
        name = validate_app_name(name)
        principal.require_admin()
        description = validate_description(description)
        env_names = [validate_env_name(env) for env in envs] or [DEFAULT_ENV]
        if len(set(env_names)) != len(env_names):
            raise AppError(ErrorCode.INVALID_REQUEST, "env names must be unique")
        if len(env_names) > MAX_ENVS_PER_APP:
            raise AppError(ErrorCode.INVALID_REQUEST, f"at most {MAX_ENVS_PER_APP} envs per app")
        now = utc_now()
        try:
            async with self.ctx.store.transaction() as q:
                if await q.app_id(name) is not None:
                    raise AppError(ErrorCode.EXISTS, f"app {name!r} already exists")
                app_id = await q.insert_app(name, description, now, principal.name)
                for env in env_names:
                    await q.insert_env(app_id, env, now)
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.APP_CREATE,
                    name,
                    f"created app {name} with envs {', '.join(env_names)}",
                    app=name,
                )
        except IntegrityError:
            raise AppError(ErrorCode.EXISTS, f"app {name!r} already exists") from None
        return App(name, description, tuple(env_names), now)

    async def add_env(self, principal: Principal, app: str, env: str) -> App:
        """A new env of an app."""
        principal.require(app, Permission.MANAGE)
        env = validate_env_name(env)
        now = utc_now()
        try:
            async with self.ctx.store.transaction() as q:
                app_id = await q.app_id(app, lock=True)
                if app_id is None:
                    raise not_found(f"app {app!r}")
                current = await q.get_app(app)
                assert current is not None
                if env in current.envs:
                    raise AppError(ErrorCode.EXISTS, f"env {env!r} of app {app!r} already exists")
                if len(current.envs) >= MAX_ENVS_PER_APP:
                    raise AppError(ErrorCode.LIMIT_EXCEEDED, f"at most {MAX_ENVS_PER_APP} envs")
                await q.insert_env(app_id, env, now)
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.ENV_CREATE,
                    f"{app}/{env}",
                    f"added env {env}",
                    app,
                    env,
                )
                updated = await q.get_app(app)
        except IntegrityError:
            raise AppError(ErrorCode.EXISTS, f"env {env!r} of app {app!r} already exists") from None
        assert updated is not None
        return updated

    async def delete_app(self, principal: Principal, name: str) -> None:
        """An app and its whole history, on every replica."""
        principal.require_admin()
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            app_id = await q.app_id(name, lock=True)
            if app_id is None:
                raise not_found(f"app {name!r}")
            await q.delete_app(app_id)
            await q.add_audit(
                now, principal.actor, AuditAction.APP_DELETE, name, f"deleted app {name}", app=name
            )
        await self.ctx.coordinator.announce(AppDeleted(name))
