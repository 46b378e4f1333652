"""Sign-in throttling, per user name and per client address, kept in the store.

The store is shared by every replica, so a name locked on one is locked on all. The policy
is the contract's: after 5 consecutive failures for a name it is locked for 30 s, doubling
with each further failure up to 15 min; an address gets at most
`auth.failures_per_address` (30) failures a minute.
"""

from __future__ import annotations

import math
import time

from server.errors import AppError, ErrorCode
from server.records import Attempts, AuditAction, utc_now
from server.store.store import Store

FREE_FAILURES_PER_NAME = 5
FIRST_LOCK_SECONDS = 30.0
MAX_LOCK_SECONDS = 15 * 60.0
ADDRESS_WINDOW_SECONDS = 60.0
# Rows idle this long are forgotten by the sweep (longer than any lock or window).
STALE_AFTER_SECONDS = 2 * MAX_LOCK_SECONDS


def name_subject(username: str) -> str:
    """The throttle row of a user name."""
    return f"user:{username}"


def address_subject(address: str) -> str:
    """The throttle row of a client address."""
    return f"addr:{address}"


def after_name_failure(before: Attempts | None, now: float) -> Attempts:
    """A name's state after one more consecutive failure."""
    failures = (before.failures if before else 0) + 1
    locked_until = 0.0
    if failures >= FREE_FAILURES_PER_NAME:
        doublings = failures - FREE_FAILURES_PER_NAME
        locked_until = now + min(FIRST_LOCK_SECONDS * 2.0 ** min(doublings, 32), MAX_LOCK_SECONDS)
    # For a name, window_start is the time of its latest failure (what the sweep ages by).
    return Attempts(failures, now, locked_until)


def after_address_failure(before: Attempts | None, now: float, limit: int) -> Attempts:
    """An address's state after one more failure, in fixed one-minute windows."""
    if before is None or now - before.window_start >= ADDRESS_WINDOW_SECONDS:
        before = Attempts(0, now, 0.0)
    failures = before.failures + 1
    locked_until = 0.0
    if failures >= limit:
        locked_until = before.window_start + ADDRESS_WINDOW_SECONDS
    return Attempts(failures, before.window_start, locked_until)


def refuse_if_locked(states: list[Attempts | None], now: float) -> None:
    """429 too_many_attempts with Retry-After while any of the subjects is locked."""
    wait = max((s.locked_until - now for s in states if s is not None), default=0.0)
    if wait > 0:
        raise AppError(
            ErrorCode.TOO_MANY_ATTEMPTS,
            f"too many failed sign-ins; try again in {math.ceil(wait)} s",
            retry_after=math.ceil(wait),
        )


class SignInThrottle:
    """Refuses locked names and addresses; counts failures; forgets them on success."""

    def __init__(self, store: Store, failures_per_address: int) -> None:
        self.store = store
        self.failures_per_address = failures_per_address

    def _subjects(self, username: str, address: str) -> tuple[str, str]:
        return name_subject(username), address_subject(address)

    async def check(self, username: str, address: str) -> None:
        """Raise 429 while the name or the address is locked."""
        name, addr = self._subjects(username, address)
        async with self.store.reader() as q:
            states = [await q.login_attempts(name), await q.login_attempts(addr)]
        refuse_if_locked(states, time.time())

    async def failures(self, username: str) -> int:
        """The consecutive failures counted for a name."""
        async with self.store.reader() as q:
            state = await q.login_attempts(name_subject(username))
        return state.failures if state is not None else 0

    async def failed(self, username: str, address: str) -> None:
        """Count one failure for both; audit it, and audit a lock when one begins."""
        name, addr = self._subjects(username, address)
        now = time.time()
        async with self.store.transaction() as q:
            before_name = await q.lock_login_attempts(name, now)
            before_addr = await q.lock_login_attempts(addr, now)
            after_name = after_name_failure(before_name, now)
            after_addr = after_address_failure(before_addr, now, self.failures_per_address)
            await q.save_login_attempts(name, after_name)
            await q.save_login_attempts(addr, after_addr)
            at = utc_now()
            actor = f"anonymous@{address}"
            await q.add_audit(
                at, actor, AuditAction.LOGIN_FAILED, name, f"wrong password for {username}"
            )
            for subject, after in ((name, after_name), (addr, after_addr)):
                if after.locked_until > now:
                    seconds = math.ceil(after.locked_until - now)
                    await q.add_audit(
                        at,
                        actor,
                        AuditAction.LOGIN_LOCKED,
                        subject,
                        f"{subject} locked for {seconds} s",
                    )

    async def sweep(self) -> int:
        """Forget subjects idle for longer than any lock or window."""
        async with self.store.transaction() as q:
            return await q.delete_stale_login_attempts(time.time() - STALE_AFTER_SECONDS)
