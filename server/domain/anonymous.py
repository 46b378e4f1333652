"""Which apps the compatible APIs may read without a credential (an app's `anonymous_read`)."""

from __future__ import annotations

import asyncio
import time

from server.store.store import Store

HOLD_SECONDS = 1.0
"""How long a replica trusts what it read: another replica's change shows within this."""


class AnonymousReads:
    """The set of apps with anonymous_read, read from the store at most once per HOLD_SECONDS.

    One query for all apps, not one per read: a compatible read stays a memory lookup. The
    replica that changes the setting forgets the set at once; the others within HOLD_SECONDS.
    """

    def __init__(self, hold_seconds: float = HOLD_SECONDS) -> None:
        self._hold = hold_seconds
        self._apps: frozenset[str] = frozenset()
        self._read_at = -float("inf")
        self._reading: asyncio.Future[None] | None = None

    def forget(self) -> None:
        """Read the store again on the next check (this replica changed the setting)."""
        self._read_at = -float("inf")

    async def allowed(self, store: Store, app: str) -> bool:
        """True when app lets the compatible APIs read it without a credential."""
        if time.monotonic() - self._read_at >= self._hold:
            await self._refresh(store)
        return app in self._apps

    async def _refresh(self, store: Store) -> None:
        if self._reading is not None:
            # One read at a time: many waiting clients at once make one query.
            await asyncio.shield(self._reading)
            return
        self._reading = asyncio.get_running_loop().create_future()
        try:
            started = time.monotonic()
            async with store.reader() as q:
                self._apps = frozenset(await q.anonymous_read_apps())
            self._read_at = started
        finally:
            self._reading.set_result(None)
            self._reading = None
