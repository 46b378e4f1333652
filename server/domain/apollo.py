"""Apollo's config-service protocol without HTTP: names, signatures, notification lists, bodies.

An Apollo `appId` is an app, a `cluster` an env, and a `namespace` one rendering of the env's
items: `application` (or `application.properties`) the map itself, `application.json`,
`.yaml` and `.yml` the items rendered as one text in `{"content": …}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from server.domain.formats import JSON_TYPE, render
from server.domain.validation import NAME_PATTERN
from server.instances import INSTANCE_PATTERN, parse_labels
from server.records import Release

DEFAULT_NAMESPACE = "application"
PROPERTIES_SUFFIX = ".properties"
# Namespace suffix -> the format its content is rendered in (None: the items map).
NAMESPACE_FORMATS: Mapping[str, str | None] = {
    DEFAULT_NAMESPACE: None,
    DEFAULT_NAMESPACE + PROPERTIES_SUFFIX: None,
    f"{DEFAULT_NAMESPACE}.json": "json",
    f"{DEFAULT_NAMESPACE}.yaml": "yaml",
    f"{DEFAULT_NAMESPACE}.yml": "yaml",
}
SIGNATURE_TOLERANCE_MS = 60_000
"""How far a signed request's Timestamp may be from the server's clock (Apollo's own)."""
MAX_NOTIFICATIONS = 100
"""Namespaces one notifications long poll may name (Apollo clients send a handful)."""
LABEL_KEY = "apollo.label"
"""The instance label a single Apollo `label` (one word, as Apollo clients send it) becomes."""


def canonical_name(raw: str) -> str | None:
    """The app or env name raw spells, or None: only the exact pattern of names is one.

    No case folding, trimming or decoding: the name checked for access is the name read.
    """
    return raw if NAME_PATTERN.fullmatch(raw) is not None else None


def namespace_format(namespace: str) -> tuple[bool, str | None]:
    """(known, format) of a namespace: the items map (format None) or a rendered text."""
    if namespace in NAMESPACE_FORMATS:
        return True, NAMESPACE_FORMATS[namespace]
    return False, None


def normalized_namespace(namespace: str) -> str:
    """The namespace as Apollo names it in answers: `.properties` is implied."""
    return namespace.removesuffix(PROPERTIES_SUFFIX)


# --- signatures ------------------------------------------------------------------


def signature(secret: str, timestamp: str, path_with_query: str) -> str:
    """Apollo's access-key signature: Base64(HMAC-SHA1(secret, timestamp + "\\n" + path))."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}\n{path_with_query}".encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class SignedRequest:
    """What an `Authorization: Apollo APPID:SIGNATURE` request claims."""

    app_id: str
    signature: str
    timestamp: str


def parse_apollo_authorization(value: str, timestamp: str | None) -> SignedRequest | None:
    """The claim of an `Apollo APPID:SIGNATURE` header, or None when it is not one."""
    scheme, _, rest = value.partition(" ")
    if scheme != "Apollo" or timestamp is None:
        return None
    app_id, sep, sig = rest.strip().rpartition(":")
    if not sep or not app_id or not sig:
        return None
    return SignedRequest(app_id, sig, timestamp)


def timestamp_fresh(timestamp: str, now_ms: int) -> bool:
    """True when an epoch-milliseconds Timestamp is within the tolerance of now."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        return False
    return abs(now_ms - int(timestamp)) <= SIGNATURE_TOLERANCE_MS


# --- readers -----------------------------------------------------------------------


@dataclass(frozen=True)
class ApolloReader:
    """An Apollo client as it named itself: instance id (its `ip`) and labels text."""

    instance: str | None
    labels_text: str | None
    problem: str | None = None
    """Why what it sent was ignored (logged), or None."""


def apollo_reader(ip: str | None, label: str | None, address: str | None) -> ApolloReader:
    """The reader an Apollo read names: `ip`, else the client's address (as Apollo's config
    service does); `label` a `k=v,k2=v2` list, or one word that becomes `apollo.label=WORD`.

    An out-of-pattern ip makes the reader anonymous; out-of-pattern labels are dropped.
    """
    instance = ip if ip else address
    if instance is None or INSTANCE_PATTERN.fullmatch(instance) is None:
        problem = None if instance is None else f"ip {instance[:64]!r} is not an instance id"
        return ApolloReader(None, None, problem)
    if not label:
        return ApolloReader(instance, None)
    text = label if "=" in label else f"{LABEL_KEY}={label}"
    try:
        parse_labels(text)
    except ValueError as exc:
        return ApolloReader(instance, None, f"label {label[:64]!r} ignored: {exc}")
    return ApolloReader(instance, text)


# --- notifications -----------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    """One namespace a notifications long poll watches, and the id the client holds."""

    namespace: str
    notification_id: int


def parse_notifications(text: str | None) -> list[Watched]:
    """The `notifications` parameter: a JSON list of {namespaceName, notificationId}.

    ValueError when it is absent, not such a list, or longer than MAX_NOTIFICATIONS.
    """
    if text is None:
        raise ValueError("notifications is required")
    try:
        entries = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("notifications is not JSON") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError("notifications must be a non-empty JSON list")
    if len(entries) > MAX_NOTIFICATIONS:
        raise ValueError(f"notifications names at most {MAX_NOTIFICATIONS} namespaces")
    watched = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("each notification is an object")
        namespace = entry.get("namespaceName")
        notification_id = entry.get("notificationId", -1)
        if not isinstance(namespace, str) or not namespace or len(namespace) > 128:
            raise ValueError("namespaceName must be a string of 1-128 characters")
        if type(notification_id) is not int or not -1 <= notification_id < 2**62:
            raise ValueError("notificationId must be an integer, -1 or more")
        watched.append(Watched(namespace, notification_id))
    return watched


def changed_notifications(
    app_id: str, cluster: str, watched: list[Watched], version: int
) -> list[dict[str, object]]:
    """The entries of watched that version is newer than, as Apollo answers them; a namespace
    this protocol does not serve never changes."""
    if version <= 0:
        return []
    answer: list[dict[str, object]] = []
    for entry in watched:
        if entry.notification_id >= version or not namespace_format(entry.namespace)[0]:
            continue
        key = f"{app_id}+{cluster}+{normalized_namespace(entry.namespace)}"
        answer.append(
            {
                "namespaceName": entry.namespace,
                "notificationId": version,
                "messages": {"details": {key: version}},
            }
        )
    return answer


def oldest_notification(watched: list[Watched]) -> int:
    """The oldest version a watching client holds (0 for one that holds nothing)."""
    return max(0, min(entry.notification_id for entry in watched))


# --- bodies ------------------------------------------------------------------------


def release_key(version: int, checksum: str, complete: bool) -> str:
    """A string that changes with every release (a gray release has its own version), and
    between the full and the secret-less rendering of one."""
    digest = checksum.rpartition(":")[2][:16]
    return f"{version}-{digest}" if complete else f"{version}-{digest}-public"


def namespace_file(
    fmt: str | None, release: Release, items: Mapping[str, str]
) -> tuple[bytes, str]:
    """A namespace as one file, (body, content type): the map namespaces as properties text,
    `.json` the items as one flat JSON object (keys sorted), `.yaml`/`.yml` as YAML."""
    if fmt == "json":
        return orjson.dumps({k: items[k] for k in sorted(items)}), JSON_TYPE
    return render(
        fmt or "properties", release.app, release.env, release.version, release.checksum, items
    )


def configurations(
    fmt: str | None, release: Release, items: Mapping[str, str]
) -> Mapping[str, str]:
    """A namespace's `configurations`: the items map, or `{"content": its file}`."""
    if fmt is None:
        return items
    return {"content": namespace_file(fmt, release, items)[0].decode("utf-8")}


def config_body(
    app_id: str,
    cluster: str,
    namespace: str,
    configurations: Mapping[str, str],
    key: str,
) -> bytes:
    """The JSON answer of `GET /configs/…`."""
    return orjson.dumps(
        {
            "appId": app_id,
            "cluster": cluster,
            "namespaceName": normalized_namespace(namespace),
            "configurations": configurations,
            "releaseKey": key,
        }
    )
