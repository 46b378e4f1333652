"""configcenter client: one call at start-up, values that update themselves, a local cache file.

Imports only the standard library and aiohttp, so a service can vendor this one file.

    async with ConfigClient("http://127.0.0.1:8080", token, "shop", "prod", "/var/cache/cc") as cc:
        pool = cc.get("db.pool", 10, cast=int)

Guarantees: releases are applied in version order and never go backwards; each release's
checksum is verified before it is applied; `version` advances only after the release's items
are written to the cache file and swapped in; `on_change` callbacks run once per applied
release, in version order, on their own task so they never stall the subscription.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import inspect
import json
import logging
import os
import random
import re
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self, TypeVar, overload
from urllib.parse import quote

import aiohttp

__all__ = [
    "Change",
    "ConfigAccessError",
    "ConfigClient",
    "ConfigClientError",
    "ConfigUnavailableError",
    "SyncConfigClient",
    "checksum_of",
]

# A fixed name rather than __name__: the module is meant to be vendored under any path.
log = logging.getLogger("configcenter.client")

_T = TypeVar("_T")
_R = TypeVar("_R")

Callback = Callable[["Change"], Awaitable[None] | None]

_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# The server's patterns for an instance (API.md, Model): copied, this file imports nothing of it.
_INSTANCE_RE: Final = re.compile(r"^[A-Za-z0-9_.:@/-]{1,128}$")
_LABEL_KEY_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_MAX_LABELS: Final = 16
_CACHE_FORMAT: Final = "configcenter-cache/1"
_CLOSE_POLICY_VIOLATION: Final = 1008  # the server closes a revoked token's sockets with it
_CLOSE_TRY_AGAIN_LATER: Final = 1013  # the server's "too slow, resubscribe" close
_STABLE_SECONDS: Final = 10.0  # a connection that lived this long resets the backoff
# Server error codes that retrying soon cannot fix: wait the longest delay between tries.
_ACCESS_CODES: Final = frozenset(
    {"unauthorized", "forbidden", "not_found", "app_deleted", "env_deleted"}
)
# The cached values of a deleted app or env must not come back at the next start.
_DELETED_CODES: Final = frozenset({"app_deleted", "env_deleted"})
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class ConfigClientError(Exception):
    """Base class of the client's errors."""


class ConfigUnavailableError(ConfigClientError):
    """No server answered within start_timeout and there was no usable cache file."""


class ConfigAccessError(ConfigClientError):
    """The server refused: bad or revoked token (401), missing scope (403), unknown app/env."""


class _Transient(Exception):
    """A failure worth retrying soon: connection refused, timeout, 5xx, a refused release."""


def checksum_of(items: Mapping[str, str]) -> str:
    """The release checksum: sha256 of the canonical JSON of items (API.md)."""
    canonical = json.dumps(dict(items), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Change:
    """One applied release: what it added, changed (key -> (old, new)) and removed."""

    app: str
    env: str
    version: int
    previous_version: int
    checksum: str
    items: Mapping[str, str]
    added: Mapping[str, str]
    changed: Mapping[str, tuple[str, str]]
    removed: Mapping[str, str]
    from_cache: bool


@dataclass(frozen=True)
class _Release:
    version: int
    checksum: str
    items: dict[str, str]


@dataclass(frozen=True)
class _Snapshot:
    """What get() and items read: replaced whole, never mutated, so readers see one release."""

    version: int
    checksum: str | None
    items: Mapping[str, str]


_EMPTY = _Snapshot(0, None, MappingProxyType({}))


def _parse_release(data: Any, app: str, env: str) -> _Release:
    """A release from the server or the cache file; ValueError unless well formed and intact."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("app") != app or data.get("env") != env:
        raise ValueError(f"it is for {data.get('app')!r}/{data.get('env')!r}, not {app}/{env}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"bad version {version!r}")
    items = data.get("items")
    if not isinstance(items, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in items.items()
    ):
        raise ValueError("items must be an object of strings")
    checksum = data.get("checksum")
    actual = checksum_of(items)
    if checksum != actual:
        raise ValueError(f"checksum mismatch: says {checksum!r}, items hash to {actual}")
    return _Release(version, actual, items)


def _write_cache(path: Path, app: str, env: str, release: _Release) -> None:
    """Write the release to path atomically: temp file, fsync, rename, fsync the directory."""
    document = {
        "format": _CACHE_FORMAT,
        "app": app,
        "env": env,
        "version": release.version,
        "checksum": release.checksum,
        "items": release.items,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    data = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600: config values are often secrets.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_cache(path: Path, app: str, env: str) -> _Release | None:
    """The cached release, or None (with a warning) when the file is missing or unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("ignoring cache file %s: %s", path, exc)
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
            raise ValueError(f"not a {_CACHE_FORMAT} document")
        return _parse_release(data, app, env)
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; absurd nesting is a RecursionError.
    except (ValueError, RecursionError) as exc:
        log.warning("ignoring cache file %s: %s", path, _describe(exc))
        return None


def default_instance() -> str:
    """hostname:pid, with any character an instance id cannot hold replaced by '-'."""
    raw = f"{socket.gethostname()}:{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9_.:@/-]", "-", raw)[-128:]


def _check_identity(instance: str, labels: Mapping[str, str]) -> dict[str, str]:
    if not _INSTANCE_RE.match(instance):
        raise ValueError(f"instance must match {_INSTANCE_RE.pattern}: {instance!r}")
    if len(labels) > _MAX_LABELS:
        raise ValueError(f"at most {_MAX_LABELS} labels")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY_RE.match(key):
            raise ValueError(f"label keys must match {_LABEL_KEY_RE.pattern}: {key!r}")
        if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isprintable():
            raise ValueError(f"label {key}: the value must be 1-128 printable characters")
        # Reads carry labels as `k=v,k2=v2`: a comma would split the value.
        if "," in value or value != value.strip():
            raise ValueError(f"label {key}: no comma and no surrounding spaces in a value")
    return dict(labels)


def _error_of(body: bytes) -> tuple[str, str]:
    """(code, message) of the server's error envelope, or a placeholder."""
    try:
        error = json.loads(body)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "unknown", body[:200].decode("utf-8", "replace").strip() or "(empty body)"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _being_cancelled() -> bool:
    """True when the current task itself was asked to stop (close()), not a stray error."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


class _Backoff:
    """Exponential delays with jitter: base * 2**n capped, each scaled by a random 0.5-1.0."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        """The next delay; grows until reset()."""
        delay = min(self.cap, self.base * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return self._jitter(delay)

    def longest(self) -> float:
        """The capped delay, jittered: for failures that retrying soon cannot fix."""
        self.attempt += 1
        return self._jitter(self.cap)

    def reset(self) -> None:
        """Start again from base."""
        self.attempt = 0

    @staticmethod
    def _jitter(delay: float) -> float:
        # Jitter spreads the reconnects of many clients after a server restart; not security.
        return delay * random.uniform(0.5, 1.0)  # noqa: S311


class ConfigClient:
    """The latest release of one app/env, kept current over a WebSocket, cached on disk."""

    def __init__(
        self,
        urls: str | Sequence[str],
        token: str,
        app: str,
        env: str,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        start_timeout: float = 15.0,
        request_timeout: float = 10.0,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        heartbeat: float = 20.0,
        callback_timeout: float | None = 60.0,
        instance: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """urls: one base URL, several (a list or comma-separated) tried in turn on failure.

        instance (default hostname:pid) and labels name this copy of the service to the server,
        which lists it in GET …/instances with the version it acked.
        """
        if isinstance(urls, str):
            urls = urls.split(",")
        self._urls = [u.strip().rstrip("/") for u in urls if u.strip()]
        if not self._urls:
            raise ValueError("at least one configcenter URL is needed")
        for url in self._urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"configcenter URL must start with http:// or https://: {url!r}")
        if not token:
            raise ValueError("a token is needed (configcenter token create NAME --scope read:APP)")
        for what, name in (("app", app), ("env", env)):
            if not _NAME_RE.match(name):
                raise ValueError(f"{what} name must match {_NAME_RE.pattern}: {name!r}")
        self.app = app
        self.env = env
        self.instance = instance if instance is not None else default_instance()
        self.labels = _check_identity(self.instance, labels or {})
        self._token = token
        self.cache_path: Path | None = (
            Path(cache_dir) / f"{app}@{env}.json" if cache_dir is not None else None
        )
        self._start_timeout = start_timeout
        self._request_timeout = request_timeout
        self._reconnect_delay = reconnect_delay
        self._reconnect_max_delay = reconnect_max_delay
        self._heartbeat = heartbeat
        self._callback_timeout = callback_timeout
        self._state = _EMPTY
        self._from_cache = False
        self._connected = False
        self._last_error: str | None = None
        self._url_index = 0
        self._callbacks: list[Callback] = []
        self._session: aiohttp.ClientSession | None = None
        # Queue and Lock bind to the loop that first uses them (the one start() runs on).
        self._changes: asyncio.Queue[Change] = asyncio.Queue()
        self._apply_lock = asyncio.Lock()
        self._runner: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ran = 0  # the newest version whose callbacks have all run (any source)
        self._served = 0  # the newest version a server sent or confirmed
        self._acked = 0  # the version acked on the current socket
        self._started = False
        self._closed = False

    # reading

    @property
    def items(self) -> Mapping[str, str]:
        """All values of the applied release: a read-only snapshot that never changes under you."""
        return self._state.items

    @property
    def version(self) -> int:
        """The applied release's version; 0 before the first."""
        return self._state.version

    @property
    def checksum(self) -> str | None:
        """The applied release's checksum."""
        return self._state.checksum

    @property
    def from_cache(self) -> bool:
        """True while the values come from the cache file and no server has confirmed them."""
        return self._from_cache

    @property
    def connected(self) -> bool:
        """True while the WebSocket subscription is open."""
        return self._connected

    @property
    def last_error(self) -> str | None:
        """The latest connection or server error, None once connected again."""
        return self._last_error

    @property
    def url(self) -> str:
        """The server URL in use (or tried next)."""
        return self._urls[self._url_index]

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: _T) -> str | _T: ...
    @overload
    def get(self, key: str, default: _T, cast: Callable[[str], _R]) -> _R | _T: ...
    @overload
    def get(self, key: str, *, cast: Callable[[str], _R]) -> _R | None: ...

    def get(self, key: str, default: Any = None, cast: Callable[[str], Any] | None = None) -> Any:
        """A value, default when absent; cast converts it (bool understands true/false/1/0...)."""
        value = self._state.items.get(key)
        if value is None:
            return default
        if cast is None:
            return value
        try:
            return _to_bool(value) if cast is bool else cast(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{self.app}/{self.env} {key}={value!r}: {exc}") from exc

    def on_change(self, callback: Callback) -> Callback:
        """Call callback(change) once per applied release, in version order; usable as decorator.

        Callbacks run one after the other on the client's task: a plain function on the event
        loop (keep it short), a coroutine function awaited for at most callback_timeout seconds.
        One that raises is logged and the others still run. Registered before start(), it also
        sees the first release start() applies (from the cache or the server).
        """
        self._callbacks.append(callback)
        return callback

    # lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Load the cache, fetch the latest release, subscribe; see the module docstring.

        Raises ConfigAccessError when a server refuses the token, scope or app/env, and
        ConfigUnavailableError when no server answers within start_timeout and no cache
        file could be loaded. With a cache file and no server it returns at once, serving
        the cached values (from_cache is True) while it keeps trying in the background.
        """
        if self._started:
            raise RuntimeError("ConfigClient.start() was already called")
        self._started = True
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._request_timeout, sock_read=self._request_timeout
            ),
        )
        self._dispatcher = asyncio.create_task(
            self._dispatch(), name=f"configcenter-callbacks-{self.app}/{self.env}"
        )
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the subscription and callbacks; the last values stay readable."""
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in (self._runner, self._dispatcher):
            if task is None or task is current:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected = False
        if self._session is not None:
            await self._session.close()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        cached = await self._load_cache()
        backoff = self._backoff()
        while True:
            error = await self._fetch_any(deadline)
            if error is None:
                break
            self._last_error = error
            if cached:
                log.warning(
                    "configcenter %s/%s: no server answered (%s); serving cached version %d "
                    "from %s and retrying in the background",
                    self.app,
                    self.env,
                    error,
                    self.version,
                    self.cache_path,
                )
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                where = (
                    f"no usable cache file at {self.cache_path}"
                    if self.cache_path is not None
                    else "no cache_dir to fall back on"
                )
                raise ConfigUnavailableError(
                    f"configcenter {self.app}/{self.env}: no server answered within "
                    f"{self._start_timeout:g} s ({', '.join(self._urls)}; last error: {error}) "
                    f"and {where}"
                )
            await asyncio.sleep(min(backoff.next(), remaining))
        # Callbacks registered before start() have seen the first release when it returns;
        # ones registered after it see only later releases.
        await self._changes.join()
        self._runner = asyncio.create_task(
            self._run(fetched=error is None), name=f"configcenter-watch-{self.app}/{self.env}"
        )

    # applying releases

    async def _load_cache(self) -> bool:
        if self.cache_path is None:
            return False
        release = await asyncio.to_thread(_read_cache, self.cache_path, self.app, self.env)
        if release is None:
            return False
        await self._apply(release, from_cache=True)
        log.info(
            "configcenter %s/%s: loaded version %d from %s",
            self.app,
            self.env,
            release.version,
            self.cache_path,
        )
        return True

    async def _forget_cache(self) -> None:
        """Remove the cache file (its app or env was deleted); the values in memory stay."""
        if self.cache_path is None:
            return
        try:
            await asyncio.to_thread(self.cache_path.unlink, missing_ok=True)
        except OSError as exc:
            log.error(
                "configcenter %s/%s: could not remove %s: %s", *self._ae, self.cache_path, exc
            )
            return
        log.warning(
            "configcenter %s/%s: deleted on the server; removed %s", *self._ae, self.cache_path
        )

    async def _apply(self, release: _Release, *, from_cache: bool) -> bool:
        """Cache, swap in, then queue the change; a release not newer than ours is dropped."""
        async with self._apply_lock:
            old = self._state
            if release.version <= old.version:
                log.debug(
                    "configcenter %s/%s: ignoring version %d (have %d)",
                    self.app,
                    self.env,
                    release.version,
                    old.version,
                )
                return False
            if not from_cache and self.cache_path is not None:
                try:
                    await asyncio.to_thread(
                        _write_cache, self.cache_path, self.app, self.env, release
                    )
                except OSError as exc:
                    # A full or read-only disk must not stop the service getting its config.
                    log.error(
                        "configcenter %s/%s: could not write cache file %s: %s",
                        self.app,
                        self.env,
                        self.cache_path,
                        exc,
                    )
            new = _Snapshot(release.version, release.checksum, MappingProxyType(release.items))
            before, after = old.items, new.items
            added = {k: v for k, v in after.items() if k not in before}
            removed = {k: v for k, v in before.items() if k not in after}
            changed = {k: (before[k], v) for k, v in after.items() if before.get(k, v) != v}
            self._state = new
            self._from_cache = from_cache
            self._changes.put_nowait(
                Change(
                    self.app,
                    self.env,
                    new.version,
                    old.version,
                    release.checksum,
                    new.items,
                    MappingProxyType(added),
                    MappingProxyType(changed),
                    MappingProxyType(removed),
                    from_cache,
                )
            )
        log.info(
            "configcenter %s/%s: applied version %d (%d added, %d changed, %d removed)",
            self.app,
            self.env,
            new.version,
            len(added),
            len(changed),
            len(removed),
        )
        return True

    async def _dispatch(self) -> None:
        while True:
            change = await self._changes.get()
            try:
                for callback in list(self._callbacks):
                    await self._call(callback, change)
                self._ran = max(self._ran, change.version)
                await self._ack()
            finally:
                self._changes.task_done()

    async def _ack(self) -> None:
        """Tell the server the version this instance runs: its callbacks have all run, and a
        server has it (a cached version no server confirmed is not acked)."""
        ws, version = self._ws, min(self._ran, self._served)
        if ws is None or ws.closed or version <= self._acked:
            return
        self._acked = version
        try:
            await ws.send_json({"op": "ack", "app": self.app, "env": self.env, "version": version})
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            # The socket is going; the next subscription acks again.
            log.debug("configcenter %s/%s: ack of %d not sent: %s", *self._ae, version, exc)

    async def _call(self, callback: Callback, change: Change) -> None:
        timeout = asyncio.timeout(self._callback_timeout)
        try:
            result = callback(change)
            if inspect.isawaitable(result):
                async with timeout:
                    await result
        except TimeoutError:
            if not timeout.expired():
                log.exception("configcenter on_change callback %r failed", callback)
            else:
                log.error(
                    "configcenter on_change callback %r took over %s s on version %d; cancelled",
                    callback,
                    self._callback_timeout,
                    change.version,
                )
        except asyncio.CancelledError:
            if _being_cancelled():
                raise
            # A callback's own stray CancelledError must not end the dispatcher: later
            # releases would then never reach any callback.
            log.exception("configcenter on_change callback %r was cancelled", callback)
        except Exception:
            log.exception(
                "configcenter on_change callback %r failed on version %d", callback, change.version
            )

    # talking to servers

    def _backoff(self) -> _Backoff:
        return _Backoff(self._reconnect_delay, self._reconnect_max_delay)

    def _next_url(self) -> None:
        self._url_index = (self._url_index + 1) % len(self._urls)

    async def _fetch_any(self, deadline: float) -> str | None:
        """Fetch from each URL in turn until one answers; None then, else the last error."""
        loop = asyncio.get_running_loop()
        error = "no URL tried"
        for _ in self._urls:
            timeout = max(0.1, min(self._request_timeout, deadline - loop.time()))
            try:
                await self._fetch(self.url, timeout)
                return None
            except _Transient as exc:
                error = f"{self.url}: {exc}"
                log.debug("configcenter %s/%s: %s", self.app, self.env, error)
                self._next_url()
        return error

    async def _fetch(self, url: str, seconds: float) -> None:
        """GET the latest release (If-None-Match our checksum) and apply it."""
        session = self._http
        headers = {}
        if self._state.checksum is not None:
            headers["If-None-Match"] = f'"{self._state.checksum}"'
        path = f"/api/v1/apps/{quote(self.app)}/envs/{quote(self.env)}/config"
        # In the query, not X-Config-*: a header cannot carry every printable label value.
        params = {"instance": self.instance}
        if self.labels:
            params["labels"] = ",".join(f"{k}={v}" for k, v in self.labels.items())
        try:
            async with session.get(
                url + path,
                headers=headers,
                params=params,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Transient(_describe(exc)) from exc
        if status == 304:
            self._confirmed(self.version)
            return
        if status == 200:
            try:
                release = _parse_release(json.loads(body), self.app, self.env)
            except ValueError as exc:
                log.error("configcenter %s/%s: refused release from %s: %s", *self._ae, url, exc)
                raise _Transient(f"refused release: {exc}") from exc
            await self._apply(release, from_cache=False)
            self._confirmed(release.version)
            return
        code, message = _error_of(body)
        if status == 404 and code == "not_published":
            self._confirmed(0)
            return
        if status in (401, 403, 404):
            raise ConfigAccessError(f"{url}: HTTP {status} {code}: {message}")
        raise _Transient(f"HTTP {status} {code}: {message}")

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the client is not started")
        return self._session

    @property
    def _ae(self) -> tuple[str, str]:
        return self.app, self.env

    def _confirmed(self, server_version: int) -> None:
        """A server answered: the cached values are confirmed once it is not behind them."""
        self._last_error = None
        self._served = max(self._served, min(server_version, self.version))
        if self._from_cache and server_version >= self.version:
            self._from_cache = False
            log.info("configcenter %s/%s: server confirms version %d", *self._ae, self.version)

    async def _run(self, *, fetched: bool) -> None:
        """Hold a subscription forever: reconnect with backoff, to the next URL, after=version."""
        backoff = self._backoff()
        if not fetched:
            await asyncio.sleep(backoff.next())
        while True:
            url = self.url
            delay: float
            try:
                if not fetched:
                    await self._fetch(url, self._request_timeout)
                fetched = False
                lived = await self._watch(url)
                if lived >= _STABLE_SECONDS:
                    backoff.reset()
                delay = backoff.next()
            except ConfigAccessError as exc:
                self._last_error = str(exc)
                delay = backoff.longest()
                log.error(
                    "configcenter %s/%s: %s; keeping version %d, retrying in %.1f s",
                    *self._ae,
                    exc,
                    self.version,
                    delay,
                )
            except _Transient as exc:
                self._last_error = f"{url}: {exc}"
                delay = backoff.next()
                log.warning(
                    "configcenter %s/%s: %s: %s; retrying in %.1f s", *self._ae, url, exc, delay
                )
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                self._last_error = f"{url}: cancelled"
                delay = backoff.next()
                log.exception("configcenter %s/%s: stray cancellation; retrying", *self._ae)
            except Exception as exc:  # the subscription must outlive any surprise
                self._last_error = f"{url}: {_describe(exc)}"
                delay = backoff.next()
                log.exception("configcenter %s/%s: unexpected error; retrying", *self._ae)
            if len(self._urls) > 1:
                self._next_url()
            await asyncio.sleep(delay)

    async def _watch(self, url: str) -> float:
        """Subscribe with after=version and apply releases until the socket closes."""
        session = self._http
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._request_timeout):
                ws = await session.ws_connect(
                    url + "/api/v1/watch",
                    heartbeat=self._heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                    # The server bounds a release by its item limits; a frame it sends must be
                    # accepted, or the client could never catch up.
                    max_msg_size=0,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise ConfigAccessError(f"{url}: WebSocket refused: HTTP {exc.status}") from exc
            raise _Transient(f"WebSocket refused: HTTP {exc.status}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Transient(_describe(exc)) from exc
        opened = loop.time()
        self._ws, self._acked = ws, 0
        try:
            subscribe: dict[str, Any] = {
                "op": "subscribe",
                "app": self.app,
                "env": self.env,
                "after": self.version,
                "instance": self.instance,
            }
            if self.labels:
                subscribe["labels"] = self.labels
            await ws.send_json(subscribe)
            # What it already runs (fetched, or applied before a reconnect) is acked at once.
            await self._ack()
            self._connected = True
            self._last_error = None
            log.info(
                "configcenter %s/%s: subscribed at %s after version %d",
                *self._ae,
                url,
                self.version,
            )
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await self._on_message(url, message.data)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    raise _Transient(f"WebSocket error: {ws.exception()}")
        except (aiohttp.ClientError, OSError) as exc:
            raise _Transient(_describe(exc)) from exc
        finally:
            self._connected = False
            self._ws = None
            await ws.close()
        lived = loop.time() - opened
        code = ws.close_code
        if code == _CLOSE_POLICY_VIOLATION:
            raise ConfigAccessError(f"{url}: subscription closed (1008): token revoked")
        if code == _CLOSE_TRY_AGAIN_LATER:
            log.warning("configcenter %s/%s: server says too slow (1013); resubscribing", *self._ae)
        else:
            log.warning("configcenter %s/%s: subscription at %s closed (%s)", *self._ae, url, code)
        return lived

    async def _on_message(self, url: str, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("configcenter %s/%s: ignoring a non-JSON message", *self._ae)
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "release":
            if message.get("app") != self.app or message.get("env") != self.env:
                return
            try:
                release = _parse_release(message, self.app, self.env)
            except ValueError as exc:
                # Refused, so the server must send it again: reconnect, resubscribe after=ours.
                log.error("configcenter %s/%s: refused release from %s: %s", *self._ae, url, exc)
                raise _Transient(f"refused release: {exc}") from exc
            await self._apply(release, from_cache=False)
            self._confirmed(release.version)
        elif kind == "error":
            code, text = str(message.get("code")), str(message.get("message"))
            if code == "invalid_request":
                # An ack the server did not take (a replica behind the one that sent the
                # release): advisory, so the subscription goes on.
                log.warning("configcenter %s/%s: server said: %s", *self._ae, text)
                return
            if code in _DELETED_CODES:
                await self._forget_cache()
            if code in _ACCESS_CODES:
                raise ConfigAccessError(f"{url}: {code}: {text}")
            raise _Transient(f"server error {code}: {text}")


class SyncConfigClient:
    """ConfigClient for programs without an event loop: it runs on a background thread.

    Same arguments and guarantees; on_change callbacks run on that thread.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        token: str,
        app: str,
        env: str,
        cache_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        """See ConfigClient."""
        self._client = ConfigClient(urls, token, app, env, cache_dir, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def client(self) -> ConfigClient:
        """The asynchronous client running on the background loop."""
        return self._client

    @property
    def items(self) -> Mapping[str, str]:
        """See ConfigClient.items."""
        return self._client.items

    @property
    def version(self) -> int:
        """See ConfigClient.version."""
        return self._client.version

    @property
    def checksum(self) -> str | None:
        """See ConfigClient.checksum."""
        return self._client.checksum

    @property
    def from_cache(self) -> bool:
        """See ConfigClient.from_cache."""
        return self._client.from_cache

    @property
    def connected(self) -> bool:
        """See ConfigClient.connected."""
        return self._client.connected

    @property
    def last_error(self) -> str | None:
        """See ConfigClient.last_error."""
        return self._client.last_error

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: _T) -> str | _T: ...
    @overload
    def get(self, key: str, default: _T, cast: Callable[[str], _R]) -> _R | _T: ...
    @overload
    def get(self, key: str, *, cast: Callable[[str], _R]) -> _R | None: ...

    def get(self, key: str, default: Any = None, cast: Callable[[str], Any] | None = None) -> Any:
        """See ConfigClient.get."""
        if cast is None:
            return self._client.get(key, default)
        return self._client.get(key, default, cast)

    def on_change(self, callback: Callback) -> Callback:
        """See ConfigClient.on_change; the callback runs on the client's thread."""
        return self._client.on_change(callback)

    def start(self) -> None:
        """Start the background loop and the client; raises what ConfigClient.start raises."""
        if self._thread is not None:
            raise RuntimeError("SyncConfigClient.start() was already called")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run_loop,
            args=(loop,),
            name=f"configcenter-{self._client.app}/{self._client.env}",
            daemon=True,
        )
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._client.start(), loop)
        try:
            future.result()
        except BaseException:
            future.cancel()
            self.close()
            raise
        atexit.register(self.close)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the client and its thread; the last values stay readable."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        if threading.current_thread() is thread:
            raise RuntimeError("close() from an on_change callback would wait for itself")
        atexit.unregister(self.close)
        future = asyncio.run_coroutine_threadsafe(self._client.close(), loop)
        try:
            future.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
