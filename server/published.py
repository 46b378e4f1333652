"""Published config held in memory: reads, long polls and pushes never touch the store.

Only releases, versions and waiting live here. While a gray release is active an env holds
two: the main release (everyone's, anonymous readers') and the gray one, which only the
instances its rule matches get (`for_reader`); a state is newer by its stamp (version, gray
step), so a widen or a promote replaces the state without a new version.

A release arrives sealed (its secret values encrypted, as the store and etcd hold it) and is
held opened, so that read tokens and the compatible APIs are served the clear values without
decrypting on each read. How a release is answered over HTTP (`server/api/answers.py`) or
pushed over a WebSocket (`server/watch/messages.py`) is built and cached by those layers, once
per release.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from server.events import AppDeleted, EnvDeleted
from server.records import Release, Stamp
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
    """What wakes the long polls of one env: a newer release, or the env's removal.

    Each waiter is a future, resolved with whether the env was removed; a waiter on many envs
    (a Nacos listener) puts its one future in each of their signals.
    """

    def __init__(self) -> None:
        self.waiters: set[asyncio.Future[bool | None]] = set()

    def fire(self, removed: bool = False) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(removed)


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
        self._gray: dict[EnvKey, Release] = {}
        self._gray_listeners: list[ReleaseListener] = []
        self._changed: dict[EnvKey, _Signal] = {}
        self._listeners: list[ReleaseListener] = []
        self._removal_listeners: list[Callable[[str], None]] = []
        self._env_removal_listeners: list[Callable[[str, str], None]] = []
        self._closing = False
        self._waiting = 0

    def add_listener(self, listener: ReleaseListener) -> None:
        """Call listener with every newly applied release."""
        self._listeners.append(listener)

    def add_gray_listener(self, listener: ReleaseListener) -> None:
        """Call listener with every newly applied active gray release (a start or a widen);
        its end comes to the release listeners (the promoted release, or the next one)."""
        self._gray_listeners.append(listener)

    def add_removal_listener(self, listener: Callable[[str], None]) -> None:
        """Call listener with the name of every app removed."""
        self._removal_listeners.append(listener)

    def add_env_removal_listener(self, listener: Callable[[str, str], None]) -> None:
        """Call listener with (app, env) of every env removed (not with those of a removed app)."""
        self._env_removal_listeners.append(listener)

    def get(self, app: str, env: str) -> Release | None:
        """The main release of an env (everyone's but a gray release's instances), or None
        before its first."""
        return self._latest.get((app, env))

    def gray(self, app: str, env: str) -> Release | None:
        """The env's active gray release, or None."""
        return self._gray.get((app, env))

    def for_reader(
        self, app: str, env: str, instance: str | None, labels: Mapping[str, str]
    ) -> Release | None:
        """The release one reader gets: the gray one when its rule matches the reader (an
        anonymous reader never), else the main release."""
        key = (app, env)
        gray = self._gray.get(key)
        if gray is not None and gray.gray is not None and instance is not None:
            if gray.gray.rule.matches(app, env, instance, labels):
                return gray
        return self._latest.get(key)

    def version(self, app: str, env: str) -> int:
        """The latest version of an env (an active gray release's), 0 before its first."""
        return self.stamp(app, env)[0]

    def stamp(self, app: str, env: str) -> Stamp:
        """The env's state: (version, gray step) of its newest release, (0, 0) before one."""
        key = (app, env)
        current = self._gray.get(key) or self._latest.get(key)
        return current.stamp if current is not None else (0, 0)

    def versions(self) -> dict[EnvKey, int]:
        """Every env's latest version."""
        return {key: stamp[0] for key, stamp in self.stamps().items()}

    def stamps(self) -> dict[EnvKey, Stamp]:
        """Every env's state stamp."""
        stamps = {key: release.stamp for key, release in self._latest.items()}
        stamps.update((key, release.stamp) for key, release in self._gray.items())
        return stamps

    def __len__(self) -> int:
        return len(self._latest)

    @property
    def waiting(self) -> int:
        """Long polls waiting here for a newer release."""
        return self._waiting

    def apply(self, release: Release) -> bool:
        """Hold a sealed release, opened, if its state is newer than what is held; tell
        listeners and waiters. A release whose secrets no loaded key opens is refused (logged),
        never served; so is an active gray release without its main release (`gray.main`, or
        the main release held here)."""
        key = (release.app, release.env)
        if release.stamp <= self.stamp(*key):
            return False
        try:
            release = self.opened(release)
        except SecretKeyError as exc:
            log.error("not serving %s/%s version %d: %s", *key, release.version, exc)
            return False
        if release.gray is not None and release.gray.active:
            return self._apply_gray(key, release)
        self._gray.pop(key, None)
        self._set_main(key, release)
        self._wake(key)
        return True

    def _apply_gray(self, key: EnvKey, release: Release) -> bool:
        assert release.gray is not None
        held = self._latest.get(key)
        main = release.gray.main
        if main is None and held is not None and held.version == release.gray.main_version:
            main = held
        if main is None or main.version != release.gray.main_version:
            log.error(
                "not serving gray %s/%s version %d: main release %d not at hand",
                *key,
                release.version,
                release.gray.main_version,
            )
            return False
        if held is None or held.version < main.version:
            self._set_main(key, main)
        self._gray[key] = release
        self._wake(key)
        self._tell(self._gray_listeners, release)
        return True

    def _set_main(self, key: EnvKey, release: Release) -> None:
        self._latest[key] = release
        self._tell(self._listeners, release)

    def _wake(self, key: EnvKey) -> None:
        signal = self._changed.pop(key, None)
        if signal is not None:
            signal.fire()

    def _tell(self, listeners: list[ReleaseListener], release: Release) -> None:
        for listener in listeners:
            try:
                listener(release)
            except Exception:
                log.exception("release listener failed for %s/%s", release.app, release.env)

    def opened(self, release: Release) -> Release:
        """A sealed release (and the main release a gray one carries) with secret values in
        clear; SecretKeyError when one fails."""
        release = open_release(self.keyring, release)
        if release.gray is not None and release.gray.main is not None:
            main = open_release(self.keyring, release.gray.main)
            release = dataclasses.replace(
                release, gray=dataclasses.replace(release.gray, main=main)
            )
        return release

    def opens(self, release: Release) -> bool:
        """True when every secret of a sealed release (and of the main release it carries)
        names a key loaded here."""
        main = release.gray.main if release.gray is not None else None
        return all(
            self.keyring.opens(r.items[k])
            for r in (release, main)
            if r is not None
            for k in r.secret_keys & r.items.keys()
        )

    def remove_app(self, app: str) -> None:
        """Forget an app that was deleted; its long polls end (EnvRemoved)."""
        for key in [k for k in self._latest if k[0] == app]:
            del self._latest[key]
            self._gray.pop(key, None)
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
        self._gray.pop(key, None)
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

    async def wait_newer(
        self,
        app: str,
        env: str,
        after: int,
        within: float,
        instance: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Release | None:
        """The reader's release (`for_reader`) once its version exceeds after, or None after
        `within` seconds.

        Raises EnvRemoved when the env (or its app) is deleted meanwhile.
        """
        key = (app, env)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        identity = labels if labels is not None else {}
        while True:
            current = self.for_reader(app, env, instance, identity)
            if current is not None and current.version > after:
                return current
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return None
            woken = await self._wait((key,), remaining)
            if woken is None:
                return None
            if woken:
                raise EnvRemoved(app, env)

    async def wait_change(self, keys: Iterable[EnvKey], within: float) -> bool:
        """Wait until any of these envs gets a new state or is removed (True), or `within`
        seconds pass (False; at once while shutting down). The caller reads what changed."""
        if self._closing or within <= 0:
            return False
        return await self._wait(tuple(set(keys)), within) is not None

    async def _wait(self, keys: tuple[EnvKey, ...], within: float) -> bool | None:
        """Whether one of keys was removed once one fires, or None after within seconds."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[bool | None] = loop.create_future()
        changed = self._changed
        signals = []
        for key in keys:
            signal = changed.get(key)
            if signal is None:
                signal = changed[key] = _Signal()
            signal.waiters.add(woken)
            signals.append(signal)
        # A plain timer, not asyncio.timeout: 10,000 waiting polls each pay for one, and the
        # context manager costs twice as much as the wait itself.
        timer = loop.call_later(within, _time_out, woken)
        self._waiting += 1
        try:
            return await woken
        finally:
            timer.cancel()
            self._waiting -= 1
            for key, signal in zip(keys, signals, strict=True):
                signal.waiters.discard(woken)
                # An env nobody waits on any more holds nothing here: a listener naming envs
                # that do not exist leaves no trace.
                if not signal.waiters and changed.get(key) is signal:
                    del changed[key]


def _time_out(waiter: asyncio.Future[bool | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
