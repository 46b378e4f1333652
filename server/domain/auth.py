"""Users, API tokens and sign-in sessions: argon2 passwords, secrets stored only as hashes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.domain.context import DomainContext
from server.domain.passwords import PasswordPool
from server.domain.scopes import Principal, parse_scopes
from server.domain.throttle import SignInThrottle, name_subject
from server.domain.validation import validate_token_name, validate_user_name
from server.errors import AppError, ErrorCode, not_found
from server.events import TokenRevoked, UserChanged
from server.records import AuditAction, Token, User, utc_after, utc_now
from server.store.db import IntegrityError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cc_"  # noqa: S105 - a prefix, not a secret
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_CACHE_LIMIT = 10_000
# A cached principal is trusted without a store read this long; then the next request reads
# its token again. Cluster events forget a revoked token at once; this bounds the time a
# replica that missed the event (its announcer died, or etcd was down) keeps accepting it.
AUTH_FRESH_SECONDS = 1.0
# While the store is unavailable, a principal confirmed this recently is still accepted.
AUTH_STALE_SECONDS = 300.0
# How often the hub asks the store whether the tokens of its open sockets were revoked: the
# repair of a lost TokenRevoked event for WebSockets (one query per 500 distinct tokens).
WS_TOKEN_CHECK_SECONDS = 1.0
# Sign-in also removes expired sessions; this catches those of a quiet server.
SESSION_SWEEP_SECONDS = 3600.0


def new_secret() -> str:
    """A random bearer secret."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """How a secret is stored and looked up: SHA-256 (secrets are 256-bit random)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token_for(session_secret: str) -> str:
    """The CSRF token bound to a session: derived from its secret, which only the cookie holds."""
    return hashlib.sha256(b"csrf:" + session_secret.encode()).hexdigest()[:40]


def check_csrf(session_secret: str, presented: str | None) -> bool:
    """True when presented is the session's CSRF token."""
    # compare_digest refuses non-ASCII text with a TypeError; such a token is simply wrong.
    if presented is None or not presented.isascii():
        return False
    return hmac.compare_digest(csrf_token_for(session_secret), presented)


def validate_password(password: str) -> str:
    """A password of sane length."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AppError(
            ErrorCode.INVALID_PASSWORD,
            f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
        )
    return password


def _expired(expires_at: str | None) -> bool:
    return expires_at is not None and expires_at <= utc_now()


@dataclass
class _Cached:
    """A principal as the store last confirmed it."""

    principal: Principal
    expires_at: str | None
    confirmed_at: float  # monotonic time of the store read that confirmed it
    check_at: float  # the next request after this reads the store again
    warned: bool = field(default=False)


@dataclass(frozen=True)
class Session:
    """A sign-in: the secret goes in a cookie or is used as a bearer token."""

    secret: str
    expires_at: str
    principal: Principal


class AuthService:
    """Sign-in, bearer authentication with an in-memory cache, token lifecycle, users."""

    def __init__(
        self,
        ctx: DomainContext,
        session_ttl: int,
        passwords: PasswordPool,
        throttle: SignInThrottle,
    ) -> None:
        self.ctx = ctx
        self.session_ttl = session_ttl
        self.passwords = passwords
        self.throttle = throttle
        self._cache: dict[str, _Cached] = {}
        self._hash_by_id: dict[int, str] = {}
        # One store read per digest at a time: concurrent requests wait for it.
        self._checking: dict[str, asyncio.Future[None]] = {}
        self.fresh_seconds = AUTH_FRESH_SECONDS

    # authentication

    async def authenticate(self, secret: str) -> Principal:
        """The principal of a bearer secret, or 401."""
        # Undecodable bytes arrive as lone surrogates, which hashing could not encode.
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128 or not secret.isascii():
            raise _unauthorized()
        digest = hash_secret(secret)
        cached = self._cache.get(digest)
        if cached is not None and time.monotonic() < cached.check_at:
            if not _expired(cached.expires_at):
                return cached.principal
            self._forget_hash(digest)
            raise _unauthorized()
        checking = self._checking.get(digest)
        if checking is not None:
            # Another request is reading this token; its answer is in the cache afterwards.
            await asyncio.shield(checking)
            cached = self._cache.get(digest)
            if cached is not None and time.monotonic() < cached.check_at:
                return cached.principal
            return await self._load(digest, None)
        done = asyncio.get_running_loop().create_future()
        self._checking[digest] = done
        try:
            return await self._load(digest, cached)
        finally:
            del self._checking[digest]
            done.set_result(None)

    async def _load(self, digest: str, cached: _Cached | None) -> Principal:
        """Read the token of digest; a cached principal outlives a store outage for a while."""
        try:
            async with self.ctx.store.reader() as q:
                token = await q.token_by_hash(digest)
        except AppError as exc:
            if cached is None or exc.code != ErrorCode.STORE_UNAVAILABLE.code:
                raise
            now = time.monotonic()
            if now - cached.confirmed_at >= AUTH_STALE_SECONDS or _expired(cached.expires_at):
                self._forget_hash(digest)
                raise
            if not cached.warned:
                cached.warned = True
                log.warning(
                    "store unavailable: still accepting cached token %s for up to %.0f s (%s)",
                    cached.principal.token_id,
                    AUTH_STALE_SECONDS - (now - cached.confirmed_at),
                    exc.message,
                )
            cached.check_at = now + self.fresh_seconds
            return cached.principal
        if token is None or token.revoked_at is not None or _expired(token.expires_at):
            self._forget_hash(digest)
            raise _unauthorized()
        principal = Principal(
            name=token.owner if token.kind == "session" else f"token:{token.name}",
            scopes=frozenset(token.scopes),
            token_id=token.id,
            kind=token.kind,
        )
        if digest not in self._cache and len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
            self._hash_by_id.clear()
        now = time.monotonic()
        self._cache[digest] = _Cached(principal, token.expires_at, now, now + self.fresh_seconds)
        self._hash_by_id[token.id] = digest
        return principal

    async def revoked_among(self, token_ids: Sequence[int]) -> list[int]:
        """Those of these token ids revoked in the store (one read per 500); forgotten here."""
        revoked: list[int] = []
        for start in range(0, len(token_ids), 500):
            async with self.ctx.store.reader() as q:
                revoked += await q.revoked_among(token_ids[start : start + 500])
        for token_id in revoked:
            self.forget_token(token_id)
        return revoked

    def forget_token(self, token_id: int) -> None:
        """Drop a token from the cache: the next use of it reads the store."""
        digest = self._hash_by_id.pop(token_id, None)
        if digest is not None:
            self._cache.pop(digest, None)

    def on_token_revoked(self, event: TokenRevoked) -> None:
        """A token was revoked on some replica: stop accepting it here."""
        self.forget_token(event.id)

    def on_user_changed(self, event: UserChanged) -> None:
        """A user changed on some replica: every cached principal may be out of date."""
        self._cache.clear()
        self._hash_by_id.clear()

    def _forget_hash(self, digest: str) -> None:
        entry = self._cache.pop(digest, None)
        if entry is not None and entry.principal.token_id is not None:
            self._hash_by_id.pop(entry.principal.token_id, None)

    # sessions

    async def login(self, username: str, password: str, address: str) -> Session:
        """A new session for a user whose password matches, else 401; 429 while throttled."""
        await self.throttle.check(username, address)
        async with self.ctx.store.reader() as q:
            user = await q.user(username) if len(username) <= 64 else None
        if not await self.passwords.verify(user.password_hash if user else None, password):
            await self.throttle.failed(username, address)
            raise AppError(ErrorCode.INVALID_CREDENTIALS, "wrong user name or password")
        assert user is not None
        scopes = ("admin",) if user.is_admin else user.scopes
        secret = new_secret()
        expires = utc_after(self.session_ttl)
        async with self.ctx.store.transaction() as q:
            await q.delete_expired_sessions(utc_now())
            token_id = await q.insert_token(
                f"session:{user.name}",
                "session",
                hash_secret(secret),
                scopes,
                user.name,
                utc_now(),
                expires,
            )
            await q.clear_login_attempts(name_subject(user.name))
            await q.add_audit(
                utc_now(),
                user.name,
                AuditAction.LOGIN_OK,
                f"token:{token_id}",
                f"signed in from {address}",
            )
        principal = Principal(user.name, frozenset(scopes), token_id, "session")
        return Session(secret, expires, principal)

    async def logout(self, principal: Principal) -> None:
        """End a session."""
        if principal.kind != "session" or principal.token_id is None:
            return
        async with self.ctx.store.transaction() as q:
            await q.revoke_token(principal.token_id, utc_now())
        await self.ctx.coordinator.announce(TokenRevoked(principal.token_id))

    async def sweep_expired_sessions(self) -> int:
        """Remove expired sessions and sign-in throttle rows idle past any lock; how many."""
        async with self.ctx.store.transaction() as q:
            removed = await q.delete_expired_sessions(utc_now())
        if removed:
            log.info("removed %d expired sessions", removed)
        forgotten = await self.throttle.sweep()
        if forgotten:
            log.info("forgot %d idle sign-in throttle rows", forgotten)
        return removed + forgotten

    # API tokens

    async def create_token(
        self, principal: Principal, name: str, scopes: object
    ) -> tuple[Token, str]:
        """A new API token; the secret is returned once and stored only as a hash."""
        principal.require_admin()
        name = validate_token_name(name)
        parsed = parse_scopes(scopes)
        secret = new_secret()
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            token_id = await q.insert_token(
                name, "api", hash_secret(secret), parsed, principal.name, now, None
            )
            await q.add_audit(
                now,
                principal.name,
                AuditAction.TOKEN_CREATE,
                f"token:{token_id}",
                f"created token {name} with scopes {' '.join(parsed)}",
            )
            token = await q.token(token_id)
        assert token is not None
        return token, secret

    async def list_tokens(self, principal: Principal) -> list[Token]:
        """API tokens, never their secrets."""
        principal.require_admin()
        async with self.ctx.store.reader() as q:
            return await q.tokens("api")

    async def revoke_token(self, principal: Principal, token_id: int) -> None:
        """Revoke a token on every replica at once; its WebSockets are closed."""
        principal.require_admin()
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            token = await q.token(token_id)
            if token is None or token.kind != "api":
                raise not_found(f"token {token_id}")
            if token.revoked_at is None:
                await q.revoke_token(token_id, now)
                await q.add_audit(
                    now,
                    principal.name,
                    AuditAction.TOKEN_REVOKE,
                    f"token:{token_id}",
                    f"revoked token {token.name}",
                )
        await self.ctx.coordinator.announce(TokenRevoked(token_id))

    # users

    async def add_user(
        self, name: str, password: str, is_admin: bool, scopes: object, actor: str
    ) -> User:
        """A new operator."""
        name = validate_user_name(name)
        validate_password(password)
        parsed = parse_scopes(scopes) if scopes else ()
        password_hash = await self.passwords.hash(password)
        now = utc_now()
        try:
            async with self.ctx.store.transaction() as q:
                if await q.user(name) is not None:
                    raise AppError(ErrorCode.EXISTS, f"user {name!r} already exists")
                await q.insert_user(name, password_hash, is_admin, parsed, now)
                await q.add_audit(
                    now,
                    actor,
                    AuditAction.USER_CREATE,
                    f"user:{name}",
                    f"created {'admin ' if is_admin else ''}user {name}",
                )
                user = await q.user(name)
        except IntegrityError:
            raise AppError(ErrorCode.EXISTS, f"user {name!r} already exists") from None
        assert user is not None
        await self.ctx.coordinator.announce(UserChanged(name))
        return user

    async def bootstrap_admin(self, password: str | None) -> str | None:
        """On an empty store, create user admin; returns a generated password to show once."""
        async with self.ctx.store.reader() as q:
            if await q.count_users() > 0:
                return None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(18)
        try:
            await self.add_user("admin", password, True, (), "bootstrap")
        except AppError as exc:
            if exc.code == "exists":  # another replica bootstrapped first
                return None
            raise
        return generated


def _unauthorized() -> AppError:
    return AppError(ErrorCode.UNAUTHORIZED, "a valid bearer token is required")
