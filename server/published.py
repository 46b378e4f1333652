"""Published config held in memory: reads, long polls and pushes never touch the store.

Only releases, versions and waiting live here. A release arrives sealed (its secret values
encrypted, as the store and etcd hold it) and is held opened, so that read tokens and the
compatible APIs are served the clear values without decrypting on each read. How a release
is answered over HTTP (`server/api/answers.py`) or pushed over a WebSocket
(`server/watch/messages.py`) is built and cached by those layers, once per release.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from server.events import AppDeleted, EnvDeleted
from server.records import Release
from server.secretbox import Keyring, SecretKeyError, where

log = logging.getLogger(__name__)

Built = TypeVar("Built")

EnvKey = tuple[str, str]
ReleaseListener = Callable[[Release], None]


class EnvRemoved(Exception):
    """The env a long poll waits on was deleted (its app too, perhaps) while it waited."""

    def __init__(self, app: str, env: str) -> None:
        super().__init__(f"{app}/{env} was deleted")
        self.app = app
        self.env = env


class _Signal:
    """What wakes the long polls of one env: a newer release, or the env's removal."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.removed = False

    def fire(self, removed: bool = False) -> None:
        self.removed = removed
        self.event.set()


def open_release(keyring: Keyring, release: Release) -> Release:
    """A sealed release with its secret values in clear; SecretKeyError when one fails."""
    if not release.secret_keys:
        return release
    items = dict(release.items)
    for name in release.secret_keys & items.keys():
        items[name] = keyring.open(where(release.app, release.env, name), items[name])
    return dataclasses.replace(release, items=items)


class PublishedConfigs:
    """The newest release per (app, env); versions only go up."""

    def __init__(self, keyring: Keyring | None = None) -> None:
        self.keyring = keyring if keyring is not None else Keyring()
        self._latest: dict[EnvKey, Release] = {}
        self._changed: dict[EnvKey, _Signal] = {}
        self._listeners: list[ReleaseListener] = []
        self._removal_listeners: list[Callable[[str], None]] = []
        self._env_removal_listeners: list[Callable[[str, str], None]] = []
        self._closing = False
        self._waiting = 0

    def add_listener(self, listener: ReleaseListener) -> None:
        """Call listener with every newly applied release."""
        self._listeners.append(listener)

    def add_removal_listener(self, listener: Callable[[str], None]) -> None:
        """Call listener with the name of every app removed."""
        self._removal_listeners.append(listener)

    def add_env_removal_listener(self, listener: Callable[[str, str], None]) -> None:
        """Call listener with (app, env) of every env removed (not with those of a removed app)."""
        self._env_removal_listeners.append(listener)

    def get(self, app: str, env: str) -> Release | None:
        """The latest release of an env, or None before its first."""
        return self._latest.get((app, env))

    def version(self, app: str, env: str) -> int:
        """The latest version of an env, 0 before its first."""
        current = self._latest.get((app, env))
        return current.version if current else 0

    def versions(self) -> dict[EnvKey, int]:
        """Every env's latest version."""
        return {key: release.version for key, release in self._latest.items()}

    def __len__(self) -> int:
        return len(self._latest)

    @property
    def waiting(self) -> int:
        """Long polls waiting here for a newer release."""
        return self._waiting

    def apply(self, release: Release) -> bool:
        """Hold a sealed release, opened, if it is newer than what is held; tell listeners and
        waiters. A release whose secrets no loaded key opens is refused (logged), never served.
        """
        key = (release.app, release.env)
        current = self._latest.get(key)
        if current is not None and current.version >= release.version:
            return False
        try:
            release = self.opened(release)
        except SecretKeyError as exc:
            log.error("not serving %s/%s version %d: %s", *key, release.version, exc)
            return False
        self._latest[key] = release
        signal = self._changed.pop(key, None)
        if signal is not None:
            signal.fire()
        for listener in self._listeners:
            try:
                listener(release)
            except Exception:
                log.exception("release listener failed for %s/%s", *key)
        return True

    def opened(self, release: Release) -> Release:
        """A sealed release with its secret values in clear; SecretKeyError when one fails."""
        return open_release(self.keyring, release)

    def opens(self, release: Release) -> bool:
        """True when every secret of a sealed release names a key loaded here."""
        return all(
            self.keyring.opens(release.items[k]) for k in release.secret_keys & release.items.keys()
        )

    def remove_app(self, app: str) -> None:
        """Forget an app that was deleted; its long polls end (EnvRemoved)."""
        for key in [k for k in self._latest if k[0] == app]:
            del self._latest[key]
        for key in [k for k in self._changed if k[0] == app]:
            self._changed.pop(key).fire(removed=True)
        for listener in self._removal_listeners:
            try:
                listener(app)
            except Exception:
                log.exception("removal listener failed for %s", app)

    def on_app_deleted(self, event: AppDeleted) -> None:
        """An app was deleted on some replica: forget it here."""
        self.remove_app(event.app)

    def remove_env(self, app: str, env: str) -> None:
        """Forget an env that was deleted; its long polls end (EnvRemoved)."""
        key = (app, env)
        self._latest.pop(key, None)
        signal = self._changed.pop(key, None)
        if signal is not None:
            signal.fire(removed=True)
        for listener in self._env_removal_listeners:
            try:
                listener(app, env)
            except Exception:
                log.exception("removal listener failed for %s/%s", app, env)

    def on_env_deleted(self, event: EnvDeleted) -> None:
        """An env was deleted on some replica: forget it here."""
        self.remove_env(event.app, event.env)

    def close(self) -> None:
        """Shutting down: answer every pending and future long poll at once."""
        self._closing = True
        for signal in self._changed.values():
            signal.fire()
        self._changed.clear()

    async def wait_newer(self, app: str, env: str, after: int, within: float) -> Release | None:
        """The latest release once its version exceeds after, or None after `within` seconds.

        Raises EnvRemoved when the env (or its app) is deleted meanwhile.
        """
        key = (app, env)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            current = self._latest.get(key)
            if current is not None and current.version > after:
                return current
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return None
            signal = self._changed.setdefault(key, _Signal())
            self._waiting += 1
            try:
                async with asyncio.timeout(remaining):
                    await signal.event.wait()
            except TimeoutError:
                return None
            finally:
                self._waiting -= 1
            if signal.removed:
                raise EnvRemoved(app, env)


class PerRelease(Generic[Built]):
    """What one layer builds from each env's latest release: built once, dropped with it."""

    def __init__(self, build: Callable[[Release], Built]) -> None:
        self._build = build
        self._by_key: dict[EnvKey, tuple[Release, Built]] = {}

    def of(self, release: Release) -> Built:
        """The value for release, built on first use and kept until its env moves on."""
        key = (release.app, release.env)
        held = self._by_key.get(key)
        if held is None or held[0] is not release:
            held = (release, self._build(release))
            self._by_key[key] = held
        return held[1]

    def forget(self, key: EnvKey) -> None:
        """Drop an env's value (a newer release replaced it, or nobody needs it)."""
        self._by_key.pop(key, None)

    def forget_app(self, app: str) -> None:
        """Drop the values of a deleted app."""
        for key in [k for k in self._by_key if k[0] == app]:
            del self._by_key[key]
