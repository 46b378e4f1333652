"""The etcd key layout under `[etcd] prefix` and the records stored there.

    {prefix}/events/{origin}/{id}             a cluster event (JSON), on a short lease
    {prefix}/instances/{replica id}           a replica's instance summary (zlib JSON), on its
                                              registration lease (server/instances.py)
    {prefix}/locks/{app}/{env}/{lease hex}    one publish-lock claim per holder or waiter
    {prefix}/releases/{app}/{env}             the latest release of an env (JSON); an active
                                              gray release carries the main release too
    {prefix}/replicas/{replica id}            a replica's registration, on its lease

App and env names cannot contain '/', so `{prefix}/releases/{app}/` holds exactly one app.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

import orjson

from server.events import AppDeleted, ClusterEvent, EnvDeleted, TokenRevoked, UserChanged
from server.records import Release, gray_from_record, gray_record

# Items larger than this are left out of the etcd record (etcd refuses requests over
# 1.5 MiB by default); replicas then read that release from the store.
INLINE_ITEMS_LIMIT = 512 * 1024


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix."""

    prefix: str

    @property
    def root(self) -> bytes:
        """Everything this cluster keeps in etcd (what the watch covers)."""
        return f"{self.prefix}/".encode()

    @property
    def releases(self) -> bytes:
        """The directory of release records."""
        return f"{self.prefix}/releases/".encode()

    @property
    def events(self) -> bytes:
        """The directory of cluster events."""
        return f"{self.prefix}/events/".encode()

    @property
    def locks(self) -> bytes:
        """The directory of publish-lock claims."""
        return f"{self.prefix}/locks/".encode()

    @property
    def instances(self) -> bytes:
        """The directory of instance summaries, one per replica."""
        return f"{self.prefix}/instances/".encode()

    def instances_of(self, replica_id: str) -> bytes:
        """One replica's instance summary."""
        return f"{self.prefix}/instances/{replica_id}".encode()

    def replica_of_instances(self, key: bytes) -> str | None:
        """The replica id of an instance summary key, None for any other key."""
        if not key.startswith(self.instances):
            return None
        return key[len(self.instances) :].decode(errors="replace") or None

    @property
    def replicas(self) -> bytes:
        """The directory of replica registrations."""
        return f"{self.prefix}/replicas/".encode()

    def release(self, app: str, env: str) -> bytes:
        """The release record of one env."""
        return f"{self.prefix}/releases/{app}/{env}".encode()

    def app_releases(self, app: str) -> bytes:
        """The release records of every env of one app."""
        return f"{self.prefix}/releases/{app}/".encode()

    def lock_dir(self, app: str, env: str) -> bytes:
        """The claims on one env's publish lock."""
        return f"{self.prefix}/locks/{app}/{env}/".encode()

    def lock(self, app: str, env: str, lease_id: int) -> bytes:
        """One holder's claim."""
        return f"{self.prefix}/locks/{app}/{env}/{lease_id:x}".encode()

    def event(self, origin: str, event_id: str) -> bytes:
        """One cluster event."""
        return f"{self.prefix}/events/{origin}/{event_id}".encode()

    def replica(self, replica_id: str) -> bytes:
        """One replica's registration."""
        return f"{self.prefix}/replicas/{replica_id}".encode()

    def env_of(self, key: bytes, directory: bytes) -> tuple[str, str] | None:
        """(app, env) of a key `directory/app/env[/...]`, None for anything else."""
        if not key.startswith(directory):
            return None
        parts = key[len(directory) :].decode(errors="replace").split("/")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            return None
        return parts[0], parts[1]


@dataclass(frozen=True)
class ReleaseRecord:
    """What a release key holds: the release, or only its header when the items are large."""

    release: Release
    inline: bool

    @property
    def version(self) -> int:
        """The release version."""
        return self.release.version


def encode_release(release: Release) -> bytes:
    """The record of a release; items inline unless they are large. An active gray release
    carries its main release (what everyone else is served) when both fit, so that one
    record is the env's whole state."""
    gray = release.gray
    if gray is not None and gray.main is not None:
        with_main = _encode(release, orjson.loads(_encode(gray.main, None)))
        if len(with_main) <= INLINE_ITEMS_LIMIT:
            return with_main
    return _encode(release, None)


def _encode(release: Release, main: dict[str, Any] | None) -> bytes:
    body: dict[str, Any] = {
        "app": release.app,
        "env": release.env,
        "version": release.version,
        "checksum": release.checksum,
        "author": release.author,
        "comment": release.comment,
        "created_at": release.created_at,
        "rollback_of": release.rollback_of,
        # The items as the store holds them: secret values sealed, never in clear.
        "secret_keys": sorted(release.secret_keys),
    }
    if release.gray is not None:
        body["gray"] = gray_record(release.gray)
    if main is not None and main.get("inline", True):
        body["main"] = main
    full = orjson.dumps({**body, "items": release.items})
    if len(full) <= INLINE_ITEMS_LIMIT:
        return full
    body.pop("main", None)
    return orjson.dumps({**body, "inline": False})


def decode_release(value: bytes) -> ReleaseRecord:
    """A release record; ValueError when it is not one. An active gray release's main
    release is in `gray.main` when it travelled with it."""
    try:
        raw = orjson.loads(value)
        release = _decode(raw)
        inline = "items" in raw
        if release.gray is not None and release.gray.active:
            main = raw.get("main")
            if main is not None:
                gray = dataclasses.replace(release.gray, main=_decode(main))
                release = dataclasses.replace(release, gray=gray)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a release record: {exc}") from None
    return ReleaseRecord(release, inline)


def _decode(raw: Any) -> Release:
    return Release(
        app=str(raw["app"]),
        env=str(raw["env"]),
        version=int(raw["version"]),
        checksum=str(raw["checksum"]),
        author=str(raw.get("author", "")),
        comment=str(raw.get("comment", "")),
        created_at=str(raw.get("created_at", "")),
        items={str(k): str(v) for k, v in raw.get("items", {}).items()},
        rollback_of=raw.get("rollback_of"),
        secret_keys=frozenset(str(k) for k in raw.get("secret_keys", [])),
        gray=gray_from_record(raw["gray"]) if raw.get("gray") is not None else None,
    )


# Every event type by its name on the wire: `{"kind": name, "data": {field: value}, "origin"}`.
# Names and fields never change meaning (replicas of two releases share one etcd); a new event
# gets a new name, which older replicas log and ignore.
EVENT_KINDS: dict[str, type[ClusterEvent]] = {
    "token_revoked": TokenRevoked,
    "user_changed": UserChanged,
    "app_deleted": AppDeleted,
    "env_deleted": EnvDeleted,
}
_KIND_OF = {cls: kind for kind, cls in EVENT_KINDS.items()}
_FIELDS = {cls: typing.get_type_hints(cls) for cls in EVENT_KINDS.values()}


class UnknownEvent(ValueError):
    """An event of a kind this replica does not know (a newer replica may send one)."""


def encode_event(event: ClusterEvent, origin: str) -> bytes:
    """The record of a cluster event."""
    kind = _KIND_OF[type(event)]
    return orjson.dumps({"kind": kind, "data": dataclasses.asdict(event), "origin": origin})


def decode_event(value: bytes) -> tuple[ClusterEvent, str]:
    """(event, origin replica); UnknownEvent for a kind not in EVENT_KINDS, else ValueError."""
    try:
        raw = orjson.loads(value)
        kind, origin, data = str(raw["kind"]), str(raw["origin"]), raw.get("data") or {}
        if not isinstance(data, dict):
            raise TypeError("data is not an object")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not an event record: {exc}") from None
    cls = EVENT_KINDS.get(kind)
    if cls is None:
        raise UnknownEvent(f"an event of unknown kind {kind!r} from {origin}")
    fields: dict[str, Any] = {}
    for name, expected in _FIELDS[cls].items():
        field_value = data.get(name)
        # Exact types: JSON true is not an id, "7" is not 7.
        if type(field_value) is not expected:
            raise ValueError(f"not an event record: {kind} needs {name} ({expected.__name__})")
        fields[name] = field_value
    return cls(**fields), origin


def decode_json(value: bytes) -> dict[str, Any]:
    """A JSON object, or {} when the value is not one."""
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return raw if isinstance(raw, dict) else {}
