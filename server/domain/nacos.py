"""The Nacos v1 config protocol without HTTP: names, listener lists, files, sign-in.

A Nacos config is named by (dataId, group, tenant). Here the dataId is an app, or an app and
a file extension (`shop`, `shop.yaml`); the group is an env (`DEFAULT_GROUP` is `default`);
the tenant (namespace) is empty or `public`. A listener sends the MD5 of what it holds per
config; it is told which ones the server now has differently.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote_plus

import orjson

from server.domain.auth import AuthService
from server.domain.compat import CompatReads
from server.domain.scopes import Permission, Principal
from server.domain.validation import NAME_PATTERN
from server.instances import INSTANCE_PATTERN, parse_labels
from server.records import Release

log = logging.getLogger(__name__)

DEFAULT_GROUP = "DEFAULT_GROUP"
DEFAULT_ENV = "default"
TENANTS = frozenset({"", "public"})
NOT_FOUND_BODY = "config data not exist"
MAX_LISTENED = 10_000
TAG_LABEL = "nacos.tag"
TOKEN_USERNAME = "token"  # noqa: S105 - the user name that says "the password is an API token"
# As POST /api/v1/login takes them: a longer password is refused before it is hashed.
MAX_USERNAME = 64
MAX_PASSWORD = 1024
TOKEN_TTL_SECONDS = 18_000  # what Nacos answers: clients sign in again before it runs out
WORD_SEPARATOR = "\x02"
LINE_SEPARATOR = "\x01"
# Nacos holds a listener `Long-Pulling-Timeout` less 500 ms, never under 10 s; above a
# minute a client's own request timeout is the likelier end, so it is held at most that.
HOLD_ADVANCE_MS = 500
MIN_HOLD_MS = 10_000
MAX_HOLD_MS = 60_000
_WARN_EVERY_SECONDS = 10.0

# extension -> (format of server/domain/formats.py, Nacos Config-Type)
_EXTENSIONS: Mapping[str, tuple[str, str]] = {
    "properties": ("properties", "properties"),
    "yaml": ("yaml", "yaml"),
    "yml": ("yaml", "yaml"),
    "json": ("json", "json"),
    "env": ("dotenv", "text"),
}
_PROPERTIES = ("properties", "properties")
_CONTENT_TYPES = {"json": "application/json;charset=UTF-8"}
_TEXT = "text/plain;charset=UTF-8"


class ProtocolError(ValueError):
    """A request the protocol cannot read (answered 400 with the message)."""


@dataclass(frozen=True, slots=True)
class ConfigRef:
    """The env and format a Nacos config name stands for."""

    app: str
    env: str
    fmt: str
    config_type: str

    @property
    def key(self) -> tuple[str, str]:
        """The env's (app, env)."""
        return (self.app, self.env)


def resolve(data_id: str, group: str, tenant: str) -> ConfigRef | None:
    """The env and format a (dataId, group, tenant) names, or None when it names none (its
    names out of pattern, another tenant): answered as a config that does not exist."""
    if tenant not in TENANTS:
        return None
    env = DEFAULT_ENV if group == DEFAULT_GROUP else group
    if NAME_PATTERN.fullmatch(env) is None:
        return None
    stem, dot, extension = data_id.rpartition(".")
    kind = _EXTENSIONS.get(extension) if dot else None
    # An app whose own name ends like an extension is read as NAME.properties.
    app, (fmt, config_type) = (stem, kind) if kind is not None else (data_id, _PROPERTIES)
    if NAME_PATTERN.fullmatch(app) is None:
        return None
    return ConfigRef(app, env, fmt, config_type)


@dataclass(frozen=True, slots=True)
class Listened:
    """One entry of a listener's list: the names as the client sent them, and its MD5."""

    data_id: str
    group: str
    md5: str
    tenant: str | None  # None: the entry had no tenant field
    ref: ConfigRef | None

    def changed_line(self) -> str:
        """The entry as a listener answer names it: dataId, group and the tenant it sent."""
        fields = [self.data_id, self.group]
        if self.tenant:
            fields.append(self.tenant)
        return WORD_SEPARATOR.join(fields) + LINE_SEPARATOR


def parse_listening(text: str) -> list[Listened]:
    """`Listening-Configs`: `dataId^2group^2md5[^2tenant]^1` entries, at most MAX_LISTENED;
    ProtocolError when malformed. The same config twice counts once."""
    if not text:
        raise ProtocolError("Listening-Configs is required: dataId%02group%02md5[%02tenant]%01…")
    if not text.endswith(LINE_SEPARATOR):
        raise ProtocolError("Listening-Configs must end each entry with %01")
    lines = text[:-1].split(LINE_SEPARATOR)
    if len(lines) > MAX_LISTENED:
        raise ProtocolError(f"at most {MAX_LISTENED} configs can be listened to at once")
    entries: dict[tuple[str, str, str], Listened] = {}
    for number, line in enumerate(lines, 1):
        fields = line.split(WORD_SEPARATOR)
        if not 3 <= len(fields) <= 4 or not fields[0] or not fields[1]:
            raise ProtocolError(
                f"Listening-Configs entry {number} is not dataId%02group%02md5[%02tenant]"
            )
        data_id, group, md5 = fields[:3]
        tenant = fields[3] if len(fields) == 4 else None
        key = (data_id, group, tenant or "")
        entries[key] = Listened(data_id, group, md5, tenant, resolve(*key))
    return list(entries.values())


def changed_body(changed: list[Listened]) -> bytes:
    """A listener's answer: the changed entries URL-encoded on one line, or nothing."""
    if not changed:
        return b""
    return quote_plus("".join(entry.changed_line() for entry in changed)).encode() + b"\n"


def hold_ms(timeout_header: str | None, no_hangup: str | None) -> int:
    """How long a listener with nothing changed is held: 0 without `Long-Pulling-Timeout` or
    with `Long-Pulling-Timeout-No-Hangup: true`; ProtocolError when the timeout is no number."""
    if timeout_header is None or (no_hangup or "").lower() == "true":
        return 0
    text = timeout_header.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise ProtocolError("Long-Pulling-Timeout must be a number of milliseconds")
    return min(max(int(text) - HOLD_ADVANCE_MS, MIN_HOLD_MS), MAX_HOLD_MS)


# --- files ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NacosFile:
    """A config's content as Nacos answers it, with its MD5 and types."""

    body: bytes
    md5: str
    content_type: str
    config_type: str

    @classmethod
    def of(cls, body: bytes, ref: ConfigRef) -> NacosFile:
        """The file of body in ref's format."""
        content_type = _CONTENT_TYPES.get(ref.fmt, _TEXT)
        return cls(
            body,
            hashlib.md5(body, usedforsecurity=False).hexdigest(),
            content_type,
            ref.config_type,
        )


def json_file(release: Release, reveal: bool) -> bytes:
    """A `.json` dataId: the items as one flat JSON object, keys sorted (no null: a secret the
    reader may not see is left out)."""
    items = release.items
    if not reveal and release.secret_keys:
        items = {k: v for k, v in items.items() if k not in release.secret_keys}
    return orjson.dumps(items, option=orjson.OPT_SORT_KEYS)


# --- readers --------------------------------------------------------------------


class _Warnings:
    """A warning per kind at most every _WARN_EVERY_SECONDS: bad client input floods no log."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -_WARN_EVERY_SECONDS) >= _WARN_EVERY_SECONDS:
            self._last[kind] = now
            log.warning(message, *args)


_warnings = _Warnings()


def reader_identity(
    instance: str | None, tag: str | None, address: str | None
) -> tuple[str | None, str | None]:
    """(instance id, labels text) of a Nacos reader: X-Config-Instance, else its address; the
    Vipserver-Tag as label nacos.tag. Out of pattern: (None, None), an unidentified reader,
    with a warning."""
    chosen = instance if instance is not None else address
    if chosen is None:
        return None, None
    if INSTANCE_PATTERN.fullmatch(chosen) is None:
        _warnings.warn("instance", "nacos reader %r: instance id out of pattern, ignored", chosen)
        return None, None
    if tag is None:
        return chosen, None
    labels_text = f"{TAG_LABEL}={tag}"
    try:
        labels = parse_labels(labels_text)
    except ValueError as exc:
        _warnings.warn("tag", "nacos reader %s: Vipserver-Tag ignored: %s", chosen, exc)
        return None, None
    if labels != {TAG_LABEL: tag}:
        _warnings.warn("tag", "nacos reader %s: Vipserver-Tag %r ignored", chosen, tag)
        return None, None
    return chosen, labels_text


@dataclass(frozen=True, slots=True)
class Credential:
    """What a Nacos call carries: a secret (accessToken or Bearer), or a name and password."""

    secret: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def given(self) -> bool:
        """False when the call carries nothing (an anonymous read)."""
        return self.secret is not None or self.username is not None


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The answer of a Nacos sign-in."""

    access_token: str
    ttl_seconds: int
    admin: bool
    username: str

    def to_json(self) -> dict[str, object]:
        """The body Nacos clients read."""
        return {
            "accessToken": self.access_token,
            "tokenTtl": self.ttl_seconds,
            "globalAdmin": self.admin,
            "username": self.username,
        }


def _check_fields(username: str, password: str) -> None:
    if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
        raise ProtocolError(
            f"username is at most {MAX_USERNAME} characters, password at most {MAX_PASSWORD}"
        )


async def sign_in(auth: AuthService, username: str, password: str, address: str) -> SignedIn:
    """A user's session, or (user name `token`) the API token given as password itself."""
    _check_fields(username, password)
    if username == TOKEN_USERNAME:
        principal = await auth.authenticate(password)
        ttl = TOKEN_TTL_SECONDS
        return SignedIn(password, ttl, principal.is_admin, TOKEN_USERNAME)
    session = await auth.login(username, password, address)
    admin = session.principal.is_admin
    return SignedIn(session.secret, auth.session_ttl, admin, username)


async def caller(auth: AuthService, credential: Credential, address: str) -> Principal | None:
    """Who a call acts as: its secret's principal, a user signed in on this call (throttled
    like login), an API token given as `token`'s password; None without a credential."""
    if credential.secret is not None:
        return await auth.authenticate(credential.secret)
    if credential.username is None:
        return None
    password = credential.password or ""
    _check_fields(credential.username, password)
    if credential.username == TOKEN_USERNAME:
        # A token is 256 random bits: nothing to throttle, as for a bearer token.
        return await auth.authenticate(password)
    return await auth.verify_sign_in(credential.username, password, address)


async def reader(compat: CompatReads, app: str, who: Principal | None) -> Principal:
    """The principal that reads app: the caller when it may (else 403), or, without one,
    the anonymous reader of an app with anonymous_read (else 401)."""
    if who is None:
        return await compat.reader(app, None)
    who.require(app, Permission.READ_CONFIG)
    return who
