"""Apps and their envs."""

from __future__ import annotations

from dataclasses import replace

from server.domain.context import DomainContext
from server.domain.scopes import Permission, Principal
from server.domain.validation import validate_app_name, validate_description, validate_env_name
from server.errors import AppError, ErrorCode, not_found
from server.events import AppDeleted, EnvDeleted
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
    """Create, list, edit and delete apps; add and delete envs."""

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

    async def update_app(
        self,
        principal: Principal,
        name: str,
        description: str | None,
        anonymous_read: bool | None = None,
    ) -> App:
        """Change an app's description or anonymous_read (owner); nothing given, or nothing
        new, writes nothing."""
        principal.require(name, Permission.MANAGE)
        if description is not None:
            description = validate_description(description)
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            app_id = await q.app_id(name, lock=True)
            if app_id is None:
                raise not_found(f"app {name!r}")
            current = await q.get_app(name)
            assert current is not None
            changed = replace(
                current,
                description=current.description if description is None else description,
                anonymous_read=(
                    current.anonymous_read if anonymous_read is None else anonymous_read
                ),
            )
            if changed == current:
                return current
            await q.update_app(app_id, changed.description, changed.anonymous_read)
            await q.add_audit(
                now,
                principal.actor,
                AuditAction.APP_UPDATE,
                name,
                _app_changes(current, changed),
                app=name,
            )
        self.ctx.anonymous_reads.forget()
        return changed

    async def delete_env(self, principal: Principal, app: str, env: str) -> None:
        """One env with its draft and releases, on every replica; never an app's last env.

        Its version numbering is retired, not forgotten: an env of the same name created later
        publishes above the deleted one's last version.
        """
        principal.require(app, Permission.MANAGE)
        async with self.ctx.store.reader() as q:
            await require_env(q, app, env)  # a 404 without taking a lock
        # Under the publish lock: a publish in flight cannot distribute after the event.
        async with self.ctx.coordinator.publish_lock(app, env):
            now = utc_now()
            async with self.ctx.store.transaction() as q:
                app_id = await q.app_id(app, lock=True)
                if app_id is None:
                    raise not_found(f"app {app!r}")
                ref = await require_env(q, app, env, lock=True)
                current = await q.get_app(app)
                assert current is not None
                if len(current.envs) <= 1:
                    raise AppError(
                        ErrorCode.LAST_ENV,
                        f"{env!r} is the only env of app {app!r}; delete the app",
                    )
                latest = await q.latest_version(ref.id)
                await q.delete_env(ref.id)
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.ENV_DELETE,
                    f"{app}/{env}",
                    f"deleted env {env} (last version {max(latest, ref.version_floor)})",
                    app,
                    env,
                )
            await self.ctx.coordinator.announce(EnvDeleted(app, env))


def _app_changes(before: App, after: App) -> str:
    """The audit detail of an app's change: what changed, never more."""
    changes = []
    if after.description != before.description:
        changes.append(f"description changed ({len(after.description)} characters)")
    if after.anonymous_read != before.anonymous_read:
        changes.append(
            "anonymous_read on: the compatible APIs read it without a credential"
            if after.anonymous_read
            else "anonymous_read off"
        )
    return "; ".join(changes)
