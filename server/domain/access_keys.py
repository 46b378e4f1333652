"""An app's Apollo access keys: the secrets Apollo clients sign their reads with.

The server recomputes each request's HMAC, so a key's secret is sealed with the secrets key
(server/secretbox.py), not hashed. Verifying a signature must not cost a query per request:
each replica holds an app's opened secrets for HOLD_SECONDS, and forgets them at once when it
changes them itself.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from server.domain.apollo import SignedRequest, signature
from server.domain.context import DomainContext
from server.domain.scopes import Permission, Principal
from server.errors import AppError, ErrorCode, not_found
from server.records import AccessKey, AuditAction, utc_now
from server.secretbox import Keyring, SecretKeyError

log = logging.getLogger(__name__)

MAX_KEYS_PER_APP = 5
HOLD_SECONDS = 1.0
"""How long a replica trusts the keys it read: another replica's change shows within this."""
MAX_HELD_APPS = 10_000
"""Apps whose keys are held at once; past it the held keys are all forgotten (and re-read)."""


def access_key_where(app: str) -> str:
    """The associated data of an app's sealed access-key secret (no env is named `@…`)."""
    return f"{app}/@access-key"


def reader_principal(app: str, key_id: int) -> Principal:
    """Who a read signed with one of app's access keys acts as: a reader of app only, that
    gets secret values in clear, as a read:APP token does."""
    return Principal(name=f"access-key:{app}#{key_id}", scopes=frozenset({f"read:{app}"}))


@dataclass(frozen=True)
class OpenedKey:
    """An access key's id with its secret in clear (held in memory only)."""

    id: int
    secret: str


class AccessKeyService:
    """Create, list and delete an app's access keys (owner); the opened secrets, briefly held."""

    def __init__(self, ctx: DomainContext, hold_seconds: float = HOLD_SECONDS) -> None:
        self.ctx = ctx
        self._hold = hold_seconds
        self._held: dict[str, tuple[float, list[OpenedKey]]] = {}
        self._reading: dict[str, asyncio.Future[None]] = {}
        # A deleted app's keys go with it (an app made again under its name has none).
        ctx.published.add_removal_listener(self._forget)

    def _forget(self, app: str) -> None:
        self._held.pop(app, None)

    async def list_keys(self, principal: Principal, app: str) -> list[AccessKey]:
        """The app's keys, oldest first (never their secrets)."""
        principal.require(app, Permission.MANAGE)
        async with self.ctx.store.reader() as q:
            if await q.app_id(app) is None:
                raise not_found(f"app {app!r}")
            return await q.access_keys(app)

    async def create_key(self, principal: Principal, app: str) -> tuple[AccessKey, str]:
        """A new key of app and its secret (32 hex characters, as Apollo's); at most
        MAX_KEYS_PER_APP per app."""
        principal.require(app, Permission.MANAGE)
        secret = secrets.token_hex(16)
        sealed = self.ctx.keyring.seal(access_key_where(app), secret)
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            app_id = await q.app_id(app, lock=True)
            if app_id is None:
                raise not_found(f"app {app!r}")
            if len(await q.access_keys(app)) >= MAX_KEYS_PER_APP:
                raise AppError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"app {app!r} has {MAX_KEYS_PER_APP} access keys, the most it may have; "
                    "delete one first",
                )
            key_id = await q.insert_access_key(app_id, sealed, now, principal.actor)
            await q.add_audit(
                now,
                principal.actor,
                AuditAction.ACCESS_KEY_CREATE,
                f"{app}/access-keys/{key_id}",
                f"created access key {key_id}",
                app=app,
            )
        self._forget(app)
        return AccessKey(key_id, app, sealed, now, principal.actor), secret

    async def delete_key(self, principal: Principal, app: str, key_id: int) -> None:
        """Remove one of app's keys: reads it signs are refused from now on (on another
        replica within HOLD_SECONDS)."""
        principal.require(app, Permission.MANAGE)
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            app_id = await q.app_id(app, lock=True)
            if app_id is None:
                raise not_found(f"app {app!r}")
            if not await q.delete_access_key(app_id, key_id):
                raise not_found(f"access key {key_id} of app {app!r}")
            await q.add_audit(
                now,
                principal.actor,
                AuditAction.ACCESS_KEY_DELETE,
                f"{app}/access-keys/{key_id}",
                f"deleted access key {key_id}",
                app=app,
            )
        self._forget(app)

    async def signed_reader(
        self, app: str, claimed: SignedRequest, path_with_query: str
    ) -> Principal | None:
        """The reader a request signed with one of app's keys acts as, or None when none of
        them signed it (the claim's app and timestamp are checked by the caller)."""
        given = claimed.signature.encode("utf-8", "replace")
        matched = None
        for key in await self.opened(app):
            expected = signature(key.secret, claimed.timestamp, path_with_query).encode("ascii")
            # Every key is tried: the time taken does not tell which one matched.
            if hmac.compare_digest(expected, given):
                matched = key.id
        return reader_principal(app, matched) if matched is not None else None

    async def opened(self, app: str) -> list[OpenedKey]:
        """The app's keys with their secrets in clear, read at most once per HOLD_SECONDS."""
        held = self._held.get(app)
        if held is not None and time.monotonic() - held[0] < self._hold:
            return held[1]
        reading = self._reading.get(app)
        if reading is not None:
            # One read at a time per app: many clients signing at once make one query.
            await asyncio.shield(reading)
            held = self._held.get(app)
            return held[1] if held is not None else []
        self._reading[app] = asyncio.get_running_loop().create_future()
        try:
            started = time.monotonic()
            async with self.ctx.store.reader() as q:
                stored = await q.access_keys(app)
            keys = _open_keys(self.ctx.keyring, stored)
            if len(self._held) >= MAX_HELD_APPS:
                self._held.clear()
            self._held[app] = (started, keys)
            return keys
        finally:
            self._reading.pop(app).set_result(None)


def _open_keys(keyring: Keyring, stored: list[AccessKey]) -> list[OpenedKey]:
    keys = []
    for key in stored:
        try:
            keys.append(
                OpenedKey(key.id, keyring.open(access_key_where(key.app), key.secret_sealed))
            )
        except SecretKeyError as exc:
            # Such a key signs nothing here; the others still do.
            log.error("access key %d of %s: %s", key.id, key.app, exc)
    return keys
