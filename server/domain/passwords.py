"""argon2 off the event loop: a small thread pool with a bounded queue in front of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.errors import AppError, ErrorCode

log = logging.getLogger(__name__)

_hasher = PasswordHasher()
# Checked against when the user does not exist, so that a wrong name costs what a wrong
# password does (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("configcenter-dummy-password")

Result = TypeVar("Result")


def hash_password(password: str) -> str:
    """An argon2id hash (blocking: 100+ ms of CPU)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when password matches the hash (blocking); a missing user checks a dummy hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class PasswordPool:
    """Runs argon2 in worker threads; when workers and queue are full it refuses at once.

    argon2 holds a core for 100+ ms and releases the GIL: on the event loop, 20 parallel
    sign-ins stall every other request for seconds; here they only queue behind each other.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._capacity = workers + queue
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Checks running or waiting for a worker."""
        return self._in_flight

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """verify_password in a worker, or 503 busy when the pool is full."""
        return await self._run(verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        """hash_password in a worker, or 503 busy when the pool is full."""
        return await self._run(hash_password, password)

    async def _run(self, work: Callable[..., Result], *args: str | None) -> Result:
        if self._in_flight >= self._capacity:
            log.warning("password pool full (%d checks in flight): refusing", self._in_flight)
            raise AppError(
                ErrorCode.BUSY, "too many sign-ins at once; retry in a second", retry_after=1
            )
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        """Stop the workers; checks still queued are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
