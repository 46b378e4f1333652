"""Spring Cloud Config's view of apps and envs: names, labels, Environment documents, flat files.

An application is an app, each profile an env, a label a release version (or the latest).
Nothing here reads a path from disk: every name is matched whole against the app and env name
pattern before anything is looked up, so the traversals Spring's own server had to learn to
refuse (`..`, `%2e%2e`, `%2f`, backslashes, NUL) are names that do not match, never a read of
something else.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import orjson

from server.domain.formats import render
from server.domain.validation import NAME_PATTERN, NAME_RULE
from server.errors import AppError, ErrorCode
from server.published import PublishedConfigs, open_release
from server.records import Release
from server.secretbox import SecretKeyError
from server.store.store import Store

log = logging.getLogger(__name__)

V2_MEDIA_TYPE = "application/vnd.spring-cloud.config-server.v2+json"
"""What Spring's Java client asks for: the same document, each value with its origin."""

LATEST_LABELS = frozenset({"main", "master"})
"""The labels Spring's clients send for "the default branch": the latest release."""

FLAT_EXTENSIONS = ("properties", "yml", "yaml", "json")

MAX_NAMES = 16
"""Applications, and profiles, one request may list (each pair of them is one read)."""

_SHOW_CHARS = 40
_VERSION_LABEL_DIGITS = 18


def _show(text: str) -> str:
    return repr(text[:_SHOW_CHARS]) + ("…" if len(text) > _SHOW_CHARS else "")


def token_secret(authorization: str | None) -> str | None:
    """The API token secret an Authorization header carries: HTTP Basic's password (any user
    name), or a Bearer token; None without the header; 401 for anything else."""
    if authorization is None:
        return None
    scheme, _, value = authorization.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        _, colon, password = decoded.partition(":")
        if colon and password:
            return password
    raise AppError(
        ErrorCode.UNAUTHORIZED,
        "Authorization must be Basic (any user name, an API token as the password) or Bearer",
    )


def error_body(status: int, message: str, path: str) -> bytes:
    """An error as Spring Boot answers one: timestamp, status, reason, message, path."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    body = {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "status": status,
        "error": reason,
        "message": message,
        "path": path,
    }
    return orjson.dumps(body)


def names(text: str, what: str) -> tuple[str, ...]:
    """A comma list of app (or env) names, each exactly in pattern, duplicates dropped; 400
    for anything else (an empty part, a path, an encoded separator, too many)."""
    parts = text.split(",")
    if len(parts) > MAX_NAMES:
        raise AppError(ErrorCode.INVALID_REQUEST, f"at most {MAX_NAMES} {what}s in one request")
    for part in parts:
        if NAME_PATTERN.fullmatch(part) is None:
            raise AppError(ErrorCode.INVALID_REQUEST, f"{what} {_show(part)}: {NAME_RULE}")
    return tuple(dict.fromkeys(parts))


def label_version(label: str | None) -> int | None:
    """The release version a label names, None for the latest (no label, `main`, `master`);
    404 for any other label, as Spring answers a label its repository does not have.

    `(_)` stands for `/`, as in Spring; no label with a `/` names a release here.
    """
    if label is None:
        return None
    label = label.replace("(_)", "/")
    if label in LATEST_LABELS:
        return None
    # One spelling per version: no sign, no leading zero, no other digits than ASCII ones.
    if label.isascii() and label.isdigit() and len(label) <= _VERSION_LABEL_DIGITS:
        if label[0] != "0":
            return int(label)
    raise AppError(
        ErrorCode.NOT_FOUND,
        f"no label {_show(label)}: a label is a release version, main or master",
    )


def reads(apps: Sequence[str], envs: Sequence[str]) -> list[tuple[str, str]]:
    """Every (app, env) a request reads, highest precedence first: the later profile first
    and, within a profile, the later application first (as Spring orders its sources)."""
    return [(app, env) for env in reversed(envs) for app in reversed(apps)]


def shown_items(release: Release, reveal: bool) -> dict[str, str]:
    """A release's items sorted by key; a secret is left out unless reveal (the protocol has
    no null)."""
    items = release.items
    hidden = frozenset() if reveal else release.secret_keys
    return {key: items[key] for key in sorted(items) if key not in hidden}


def source_name(release: Release) -> str:
    """The property source's name: which app, env and version it is."""
    return f"configcenter:{release.app}/{release.env}@v{release.version}"


def property_source(release: Release, reveal: bool, origins: bool) -> dict[str, Any]:
    """One release as a Spring property source; with origins (the v2 media type) each value
    is `{"value","origin"}`."""
    name = source_name(release)
    items = shown_items(release, reveal)
    source: dict[str, Any] = (
        {key: {"value": value, "origin": name} for key, value in items.items()}
        if origins
        else items
    )
    return {"name": name, "source": source}


def environment(
    application: str,
    profiles: Sequence[str],
    label: str | None,
    releases: Sequence[Release],
    sources: Sequence[Mapping[str, Any]],
) -> bytes:
    """Spring's Environment document: sources in precedence order; `version` names every
    source's release, so it changes with every release of any of them (null when none)."""
    version = ",".join(str(release.version) for release in releases) or None
    body = {
        "name": application,
        "profiles": list(profiles),
        "label": label,
        "version": version,
        "state": None,
        "propertySources": list(sources),
    }
    return orjson.dumps(body)


def merged_items(sources: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Items from sources in precedence order: the first source that has a key wins."""
    merged: dict[str, str] = {}
    for items in reversed(sources):
        merged.update(items)
    return merged


def flat_file(extension: str, items: Mapping[str, str]) -> tuple[bytes, str]:
    """Items as one flat file, keys as they are (not nested): (body, content type)."""
    if extension == "json":
        return orjson.dumps({key: items[key] for key in sorted(items)}), "application/json"
    fmt = "properties" if extension == "properties" else "yaml"
    return render(fmt, "", "", 0, "", items)


class ReleaseHistory:
    """Old releases read by version, opened, and held: a release never changes, so each is
    read from the store once, until its env (or app) is removed or the space is needed."""

    def __init__(self, store: Store, published: PublishedConfigs, max_bytes: int) -> None:
        self.store = store
        self.published = published
        self.max_bytes = max_bytes
        self._held: OrderedDict[tuple[str, str, int], tuple[Release, int]] = OrderedDict()
        self._bytes = 0
        published.add_env_removal_listener(self._forget_env)
        published.add_removal_listener(self._forget_app)

    async def release(self, app: str, env: str, version: int) -> Release | None:
        """Release version of app/env, secrets opened; None when there is none (or its
        secrets are sealed with a key this replica does not have: logged)."""
        key = (app, env, version)
        held = self._held.get(key)
        if held is not None:
            self._held.move_to_end(key)
            return held[0]
        async with self.store.reader() as q:
            ref = await q.env(app, env)
            sealed = await q.release(ref.id, version) if ref is not None else None
        if sealed is None:
            return None
        try:
            release = open_release(self.published.keyring, sealed)
        except SecretKeyError as exc:
            log.error("not serving %s/%s version %d: %s", app, env, version, exc)
            return None
        self._hold(key, release)
        return release

    def _hold(self, key: tuple[str, str, int], release: Release) -> None:
        size = sum(len(k) + len(v) for k, v in release.items.items())
        if size > self.max_bytes:
            return
        self._held[key] = (release, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._held.popitem(last=False)
            self._bytes -= dropped

    def _forget_env(self, app: str, env: str) -> None:
        # A recreated env numbers its releases from 1 again: nothing held may stand for them.
        self._forget(lambda k: k[0] == app and k[1] == env)

    def _forget_app(self, app: str) -> None:
        self._forget(lambda k: k[0] == app)

    def _forget(self, matches: Callable[[tuple[str, str, int]], bool]) -> None:
        for key in [k for k in self._held if matches(k)]:
            self._bytes -= self._held.pop(key)[1]


async def labelled_release(
    published: PublishedConfigs,
    history: ReleaseHistory,
    app: str,
    env: str,
    version: int,
    readers_release: Release | None,
) -> Release | None:
    """Release version of app/env as one reader may have it: the main release or the
    reader's own (a gray release its rule takes) from memory; an older one from the history;
    None for a version not published yet, or a gray release meant for other readers."""
    main = published.get(app, env)
    if main is None:
        return None
    if version == main.version:
        return main
    if readers_release is not None and readers_release.version == version:
        return readers_release
    if version > main.version:
        return None
    return await history.release(app, env, version)
