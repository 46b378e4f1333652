"""Operators: creating, changing, disabling and deleting users, and their passwords.

Every change moves the user's `changed_at`, which is how every replica's cache and every open
socket of the user's sessions learn of it (within about a second, events or not).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from server.domain.context import DomainContext
from server.domain.passwords import PasswordPool
from server.domain.scopes import Principal, Role, parse_roles
from server.domain.validation import validate_user_name
from server.errors import AppError, ErrorCode, not_found
from server.events import TokenRevoked, UserChanged
from server.records import AuditAction, User, utc_now
from server.store.db import IntegrityError
from server.store.queries import Queries

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
BOOTSTRAP_ADMIN = "admin"
# Who creates the first admin on an empty store (the audit names it "bootstrap").
BOOTSTRAP = Principal("bootstrap", frozenset({"admin"}), kind="system")


def validate_password(password: object) -> str:
    """A password of sane length."""
    if not isinstance(password, str) or not (
        MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    ):
        raise AppError(
            ErrorCode.INVALID_PASSWORD,
            f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
        )
    return password


def _describe_roles(roles: Mapping[str, Role]) -> str:
    return ", ".join(f"{app}={role.value}" for app, role in roles.items()) or "none"


class UserService:
    """Users, as admins (and each user, for their own password) manage them."""

    def __init__(self, ctx: DomainContext, passwords: PasswordPool) -> None:
        self.ctx = ctx
        self.passwords = passwords

    async def list_users(self, principal: Principal) -> list[User]:
        """Every user (admin)."""
        principal.require_admin()
        async with self.ctx.store.reader() as q:
            return await q.users()

    async def get_user(self, principal: Principal, name: str) -> User:
        """One user: an admin sees anyone, a user themself."""
        if principal.user != name:
            principal.require_admin()
        async with self.ctx.store.reader() as q:
            user = await q.user(name)
        if user is None:
            raise not_found(f"user {name!r}")
        return user

    async def add_user(
        self,
        principal: Principal,
        name: object,
        password: object,
        is_admin: bool = False,
        roles: object = None,
    ) -> User:
        """A new operator (admin)."""
        principal.require_admin()
        name = validate_user_name(name)
        password = validate_password(password)
        parsed = parse_roles(roles if roles is not None else {})
        password_hash = await self.passwords.hash(password)
        now = utc_now()
        try:
            async with self.ctx.store.transaction() as q:
                if await q.user(name) is not None:
                    raise AppError(ErrorCode.EXISTS, f"user {name!r} already exists")
                await q.insert_user(name, password_hash, is_admin, parsed, now)
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.USER_CREATE,
                    f"user:{name}",
                    f"created {'admin ' if is_admin else ''}user {name} with roles "
                    + _describe_roles(parsed),
                )
                user = await q.user(name)
        except IntegrityError:
            raise AppError(ErrorCode.EXISTS, f"user {name!r} already exists") from None
        assert user is not None
        await self.ctx.coordinator.announce(UserChanged(name))
        return user

    async def update_user(
        self,
        principal: Principal,
        name: str,
        is_admin: bool | None = None,
        roles: object = None,
        disabled: bool | None = None,
    ) -> User:
        """Change a user's admin flag, roles or disabled state (admin); never leaves no
        enabled admin. Disabling ends the user's sessions."""
        principal.require_admin()
        parsed = parse_roles(roles) if roles is not None else None
        now = utc_now()
        ended: list[int] = []
        async with self.ctx.store.transaction() as q:
            user = await _require_user(q, name)
            new_admin = user.is_admin if is_admin is None else is_admin
            new_disabled = user.disabled if disabled is None else disabled
            new_roles = parse_roles(dict(user.roles)) if parsed is None else parsed
            if user.is_admin and not user.disabled and (not new_admin or new_disabled):
                await _keep_an_admin(q, name)
            changes = []
            if new_admin != user.is_admin:
                changes.append("admin" if new_admin else "not admin")
            if new_disabled != user.disabled:
                changes.append("disabled" if new_disabled else "enabled")
            if new_roles != parse_roles(dict(user.roles)):
                changes.append(f"roles {_describe_roles(new_roles)}")
            if changes:
                await q.update_user(name, new_admin, new_roles, new_disabled, now)
                if new_disabled and not user.disabled:
                    ended = await q.revoke_sessions_of(name, now)
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.USER_UPDATE,
                    f"user:{name}",
                    f"{name}: {', '.join(changes)}",
                )
            updated = await q.user(name)
        assert updated is not None
        if changes:
            await self._announce(name, ended)
        return updated

    async def set_password(
        self, principal: Principal, name: str, password: object, current: object = None
    ) -> None:
        """A user changes their own password (with the current one), or an admin resets
        anyone's. The user's other sessions end; the caller's own stays."""
        own = principal.user == name
        if not own:
            principal.require_admin()
        password = validate_password(password)
        async with self.ctx.store.reader() as q:
            user = await _require_user(q, name)
        if (own and not principal.is_admin) or current is not None:
            if not isinstance(current, str) or not await self.passwords.verify(
                user.password_hash, current
            ):
                raise AppError(ErrorCode.WRONG_PASSWORD, "the current password is wrong")
        password_hash = await self.passwords.hash(password)
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            await _require_user(q, name)
            await q.update_user_password(name, password_hash, now)
            keep = principal.token_id if own and principal.kind == "session" else None
            ended = await q.revoke_sessions_of(name, now, keep)
            await q.add_audit(
                now,
                principal.actor,
                AuditAction.USER_PASSWORD,
                f"user:{name}",
                f"{'changed own' if own else 'reset the'} password of {name}; "
                f"ended {len(ended)} other sessions",
            )
        await self._announce(name, ended)

    async def delete_user(self, principal: Principal, name: str) -> None:
        """Remove a user and end their sessions (admin); never the last enabled admin."""
        principal.require_admin()
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            user = await _require_user(q, name)
            if user.is_admin and not user.disabled:
                await _keep_an_admin(q, name)
            ended = await q.revoke_sessions_of(name, now)
            await q.delete_user(name)
            await q.add_audit(
                now,
                principal.actor,
                AuditAction.USER_DELETE,
                f"user:{name}",
                f"deleted user {name}; ended {len(ended)} sessions",
            )
        await self._announce(name, ended)

    async def bootstrap_admin(self, password: str | None) -> str | None:
        """On an empty store, create user admin; returns a generated password to show once."""
        async with self.ctx.store.reader() as q:
            if await q.count_users() > 0:
                return None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(18)
        try:
            await self.add_user(BOOTSTRAP, BOOTSTRAP_ADMIN, password, True)
        except AppError as exc:
            if exc.code == ErrorCode.EXISTS.code:  # another replica bootstrapped first
                return None
            raise
        return generated

    async def _announce(self, name: str, ended: list[int]) -> None:
        """Tell every replica: forget cached principals of the user, close ended sessions."""
        await self.ctx.coordinator.announce(UserChanged(name))
        for token_id in ended:
            await self.ctx.coordinator.announce(TokenRevoked(token_id))


async def _require_user(q: Queries, name: str) -> User:
    user = await q.user(name, lock=True)
    if user is None:
        raise not_found(f"user {name!r}")
    return user


async def _keep_an_admin(q: Queries, name: str) -> None:
    """409 last_admin unless an enabled admin other than name remains."""
    if not [admin for admin in await q.enabled_admins() if admin != name]:
        raise AppError(
            ErrorCode.LAST_ADMIN, f"{name} is the last enabled admin; make another admin first"
        )
