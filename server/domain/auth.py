"""Users, API tokens and sign-in sessions: argon2 passwords, secrets stored only as hashes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from server.domain.context import DomainContext
from server.domain.passwords import PasswordPool
from server.domain.scopes import Principal, parse_roles, parse_scopes
from server.domain.throttle import SignInThrottle, name_subject
from server.domain.validation import validate_token_name, validate_user_name
from server.errors import AppError, ErrorCode, not_found
from server.events import TokenRevoked, UserChanged
from server.records import AuditAction, Token, User, utc_after, utc_now
from server.store.db import IntegrityError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cc_"  # noqa: S105 - a prefix, not a secret
MIN_TOKEN_TTL = 60
MAX_TOKEN_TTL = 10 * 365 * 86400
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
# A token's last_used_at is written at most this often, never on every request.
LAST_USED_EVERY_SECONDS = 60.0
# How often the noted uses are written, in one transaction.
LAST_USED_WRITE_SECONDS = 10.0


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
        # Token id -> when its use was last noted (monotonic), and uses not yet written.
        self._touched: dict[int, float] = {}
        self._used: dict[int, str] = {}

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
                self._note_use(cached.principal.token_id)
                return cached.principal
            self._forget_hash(digest)
            raise _unauthorized()
        checking = self._checking.get(digest)
        if checking is not None:
            if cached is not None and not _expired(cached.expires_at):
                # Another request is checking this token again: until its read answers, the
                # principal the store confirmed a second ago stands. A burst of thousands of
                # requests (long polls answered at once, polling again) would otherwise all
                # wait on that read, which the busy loop itself delays.
                self._note_use(cached.principal.token_id)
                return cached.principal
            # Another request is reading this token; its answer is in the cache afterwards.
            await asyncio.shield(checking)
            cached = self._cache.get(digest)
            if cached is not None and time.monotonic() < cached.check_at:
                self._note_use(cached.principal.token_id)
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
        user = None
        if token is not None and token.kind == "session":
            async with self.ctx.store.reader() as q:
                user = await q.user(token.owner)
        if (
            token is None
            or token.revoked_at is not None
            or _expired(token.expires_at)
            or (token.kind == "session" and (user is None or user.disabled))
        ):
            self._forget_hash(digest)
            raise _unauthorized()
        principal = _principal_of(token, user)
        self._note_use(token.id)
        if digest not in self._cache and len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
            self._hash_by_id.clear()
        now = time.monotonic()
        self._cache[digest] = _Cached(principal, token.expires_at, now, now + self.fresh_seconds)
        self._hash_by_id[token.id] = digest
        return principal

    async def stale_among(self, principals: Mapping[int, Principal]) -> list[int]:
        """Those of these principals (by token id) no longer valid in the store: the token was
        revoked, or a session's user was deleted, disabled or changed since it was read.
        One read per 500; the stale ones are forgotten here."""
        ids = list(principals)
        stale: list[int] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            async with self.ctx.store.reader() as q:
                stale += await q.revoked_among(chunk)
                for token_id, changed_at, disabled in await q.session_users_changed(chunk):
                    if changed_at != principals[token_id].rights_as_of or disabled:
                        stale.append(token_id)
        for token_id in stale:
            self.forget_token(token_id)
        return sorted(set(stale))

    def _note_use(self, token_id: int | None) -> None:
        """Remember that a token was used; written at most once a minute per token."""
        if token_id is None:
            return
        now = time.monotonic()
        if now - self._touched.get(token_id, -LAST_USED_EVERY_SECONDS) >= LAST_USED_EVERY_SECONDS:
            self._touched[token_id] = now
            self._used[token_id] = utc_now()
            if len(self._touched) > _CACHE_LIMIT:
                self._touched.clear()

    async def write_last_used(self) -> int:
        """Store the last-use times noted since the previous call; how many."""
        if not self._used:
            return 0
        used, self._used = self._used, {}
        try:
            async with self.ctx.store.transaction() as q:
                await q.touch_tokens(used)
        except AppError as exc:
            if exc.code != ErrorCode.STORE_UNAVAILABLE.code:
                raise
            self._used = {**used, **self._used}  # kept for the next try
            return 0
        return len(used)

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

    async def _signed_in_user(self, username: str, password: str, address: str) -> User:
        """The enabled user whose password matches, else 401 (a failure counted); 429 while
        throttled."""
        await self.throttle.check(username, address)
        async with self.ctx.store.reader() as q:
            user = await q.user(username) if len(username) <= 64 else None
        # A disabled user's password is checked too: the answer and its time are the same.
        matches = await self.passwords.verify(user.password_hash if user else None, password)
        if not matches or user is None or user.disabled:
            await self.throttle.failed(username, address)
            raise AppError(ErrorCode.INVALID_CREDENTIALS, "wrong user name or password")
        return user

    async def verify_sign_in(self, username: str, password: str, address: str) -> Principal:
        """The user a name and password sign in as, without a session (a protocol that sends
        them on every call, as Nacos clients may). Failures are throttled and audited as
        login's; a success is not audited: it would be an entry per call."""
        failures = await self.throttle.failures(username)
        user = await self._signed_in_user(username, password, address)
        if failures:
            # Only then: a success after failures starts the count again, and a client that
            # signs in on every call writes nothing.
            async with self.ctx.store.transaction() as q:
                await q.clear_login_attempts(name_subject(user.name))
        return _user_principal(user, None)

    async def login(self, username: str, password: str, address: str) -> Session:
        """A new session for an enabled user whose password matches, else 401; 429 while
        throttled."""
        user = await self._signed_in_user(username, password, address)
        secret = new_secret()
        now = utc_now()
        expires = utc_after(self.session_ttl)
        async with self.ctx.store.transaction() as q:
            await q.delete_expired_sessions(now)
            token_id = await q.insert_token(
                f"session:{user.name}",
                "session",
                hash_secret(secret),
                (),
                user.name,
                now,
                expires,
                address[:255],
            )
            await q.set_last_login(user.name, now)
            await q.clear_login_attempts(name_subject(user.name))
            await q.add_audit(
                now,
                f"user:{user.name}",
                AuditAction.LOGIN_OK,
                f"session:{token_id}",
                f"signed in from {address[:255]}",
            )
        token = Token(
            token_id, f"session:{user.name}", "session", (), user.name, now, expires, None
        )
        return Session(secret, expires, _principal_of(token, user))

    async def logout(self, principal: Principal) -> None:
        """End a session."""
        if principal.kind != "session" or principal.token_id is None:
            return
        async with self.ctx.store.transaction() as q:
            await q.revoke_token(principal.token_id, utc_now())
        await self.ctx.coordinator.announce(TokenRevoked(principal.token_id))

    async def list_sessions(self, principal: Principal, user: str | None) -> list[Token]:
        """Live sessions: the caller's own, or (admin) one user's or everyone's."""
        if user is not None:
            user = validate_user_name(user)
        if user is None and not principal.is_admin:
            if principal.user is None:
                return []  # an API token has no sessions of its own
            user = principal.user
        if user != principal.user:
            principal.require_admin()
        async with self.ctx.store.reader() as q:
            return await q.live_sessions(user, utc_now())

    async def revoke_session(self, principal: Principal, session_id: int) -> None:
        """End a session (one's own, or any as an admin) on every replica; its sockets close."""
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            token = await q.token(session_id)
            if (
                token is None
                or token.kind != "session"
                or (token.owner != principal.user and not principal.is_admin)
            ):
                raise not_found(f"session {session_id}")
            if token.revoked_at is None:
                await q.revoke_token(session_id, now)
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.SESSION_REVOKE,
                    f"session:{session_id}",
                    f"ended a session of {token.owner}",
                )
        await self.ctx.coordinator.announce(TokenRevoked(session_id))

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
        self, principal: Principal, name: str, scopes: object, expires_in: int | None = None
    ) -> tuple[Token, str]:
        """A new API token; the secret is returned once and stored only as a hash."""
        principal.require_admin()
        name = validate_token_name(name)
        parsed = parse_scopes(scopes)
        if expires_in is not None and not MIN_TOKEN_TTL <= expires_in <= MAX_TOKEN_TTL:
            raise AppError(
                ErrorCode.INVALID_REQUEST,
                f"expires_in is {MIN_TOKEN_TTL} to {MAX_TOKEN_TTL} seconds",
            )
        secret = new_secret()
        now = utc_now()
        expires = utc_after(expires_in) if expires_in is not None else None
        try:
            async with self.ctx.store.transaction() as q:
                await q.free_expired_token_name(name, now)
                token_id = await q.insert_token(
                    name, "api", hash_secret(secret), parsed, principal.actor, now, expires
                )
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.TOKEN_CREATE,
                    f"token:{name}#{token_id}",
                    f"created token {name} with scopes {' '.join(parsed)}"
                    + (f", expiring {expires}" if expires else ""),
                )
                token = await q.token(token_id)
        except IntegrityError:
            raise AppError(
                ErrorCode.EXISTS, f"a live token is already named {name!r}; revoke it first"
            ) from None
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
                    principal.actor,
                    AuditAction.TOKEN_REVOKE,
                    f"token:{token.name}#{token_id}",
                    f"revoked token {token.name}",
                )
        await self.ctx.coordinator.announce(TokenRevoked(token_id))


def _principal_of(token: Token, user: User | None) -> Principal:
    """Who a token acts as: a session acts as its user, with the user's current rights."""
    if token.kind == "session" and user is not None:
        return _user_principal(user, token.id)
    return Principal(name=f"token:{token.name}", scopes=frozenset(token.scopes), token_id=token.id)


def _user_principal(user: User, session_id: int | None) -> Principal:
    """A user with the user's current rights: through a session, or signed in on one call."""
    return Principal(
        name=user.name,
        token_id=session_id,
        kind="session" if session_id is not None else "password",
        roles=parse_roles(dict(user.roles)),
        admin=user.is_admin,
        user=user.name,
        rights_as_of=user.changed_at,
    )


def _unauthorized() -> AppError:
    return AppError(ErrorCode.UNAUTHORIZED, "a valid bearer token is required")
