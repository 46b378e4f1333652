"""Instances: who reads or subscribes to which env, held in memory per replica.

An instance is one running copy of a service as it identifies itself (an id and labels) on a
WebSocket subscription or an HTTP read. Each replica keeps its own here: WebSocket ones while
subscribed, HTTP ones for `instances.ttl_seconds` after they were last seen. Nothing here
touches the store: the read path only updates a record in a dict.

The other replicas' instances arrive as one compact summary per replica (`encode_summary`,
zlib-compressed JSON), written to etcd by the coordinator when `dirty` and fed back here from
its watch (`peer_summary`); `listing` merges them with the local ones. A standalone server has
no peers.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

log = logging.getLogger(__name__)

INSTANCE_PATTERN = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")
LABEL_KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
MAX_LABELS = 16
MAX_LABEL_VALUE = 128
SUMMARY_FORMAT = 1
# etcd refuses requests over 1.5 MiB by default; a summary stays well below (docs/cluster.md).
MAX_SUMMARY_BYTES = 1024 * 1024
WARN_EVERY_SECONDS = 10.0

EnvKey = tuple[str, str]


class Transport(StrEnum):
    """How an instance reaches the server."""

    WEBSOCKET = "websocket"
    LONGPOLL = "longpoll"
    HTTP = "http"
    # The compatible APIs' readers (server/compat/), plain reads and long polls alike.
    APOLLO = "apollo"
    SPRING = "spring"
    NACOS = "nacos"


_TRANSPORTS = {t.value: t for t in Transport}
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def check_instance(value: str) -> str:
    """An instance id as given; ValueError when it is out of pattern."""
    if INSTANCE_PATTERN.fullmatch(value) is None:
        raise ValueError(f"instance must match ^{INSTANCE_PATTERN.pattern}$")
    return value


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels as given; ValueError when there are too many or one is out of pattern."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if LABEL_KEY_PATTERN.fullmatch(key) is None:
            raise ValueError(f"label keys must match ^{LABEL_KEY_PATTERN.pattern}$")
        if not 1 <= len(value) <= MAX_LABEL_VALUE or not value.isprintable():
            raise ValueError(f"label {key}: values are 1-{MAX_LABEL_VALUE} printable characters")
    return dict(labels)


def parse_labels(text: str) -> dict[str, str]:
    """`k=v, k2=v2` (or `k:v,k2:v2`) as labels; ValueError when malformed or out of pattern.

    Keys cannot hold `=` or `:`, so the first of them ends the key; a value cannot hold a comma
    in this form (the WebSocket subscribe takes any value).
    """
    labels: dict[str, str] = {}
    if not text.strip():
        return labels
    for part in text.split(","):
        pair = part.strip()
        cut = min((i for i in (pair.find("="), pair.find(":")) if i >= 0), default=-1)
        if cut <= 0:
            raise ValueError("labels are key=value pairs separated by commas")
        key = pair[:cut]
        if key in labels:
            raise ValueError(f"label {key} given twice")
        labels[key] = pair[cut + 1 :]
    return check_labels(labels)


def rfc3339(seconds: float) -> str:
    """A Unix time as fixed-width RFC 3339 UTC, like every other time the API answers."""
    return datetime.fromtimestamp(seconds, UTC).strftime(_TIME_FORMAT)


@dataclass(slots=True, eq=False)
class Instance:
    """One instance of one env, as one replica knows it."""

    app: str
    env: str
    instance: str
    labels: dict[str, str]
    replica: str
    transport: Transport
    address: str | None
    connected_at: float
    last_seen: float
    delivered_version: int | None = None
    applied_version: int | None = None
    gray: bool = False
    # The X-Config-Labels text the labels were parsed from: the same text is not parsed again.
    labels_text: str | None = field(default=None, repr=False)
    # last_seen when it was last marked for the summary (a reader's reads are not each a write).
    marked_seen: float = field(default=0.0, repr=False)

    @property
    def version(self) -> int | None:
        """The version it runs: the one it acked, else the one it was last sent."""
        return self.applied_version if self.applied_version is not None else self.delivered_version

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every one of labels is among its labels (what gray rules will ask)."""
        return all(self.labels.get(k) == v for k, v in labels.items())

    def to_json(self) -> dict[str, Any]:
        """The API shape (docs/api.md: GET …/instances)."""
        return {
            "instance": self.instance,
            "labels": self.labels,
            "replica": self.replica,
            "transport": self.transport.value,
            "address": self.address,
            "connected_at": rfc3339(self.connected_at),
            "last_seen": rfc3339(self.last_seen),
            "delivered_version": self.delivered_version,
            "applied_version": self.applied_version,
            "gray": self.gray,
        }


@dataclass(frozen=True)
class Filters:
    """What a listing keeps: every label pair, a version, a replica, a transport (None: any)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    version: int | None = None
    replica: str | None = None
    transport: Transport | None = None

    def keep(self, instance: Instance) -> bool:
        """True when instance passes every filter."""
        return (
            (self.version is None or instance.version == self.version)
            and (self.replica is None or instance.replica == self.replica)
            and (self.transport is None or instance.transport is self.transport)
            and instance.matches(self.labels)
        )


@dataclass
class _Peer:
    """Another replica's summary: kept compressed, decoded on the first listing that needs it."""

    revision: int
    raw: bytes
    decoded: dict[EnvKey, list[Instance]] | None = None


class InstanceRegistry:
    """This replica's instances, and the latest summary of every other replica's."""

    def __init__(
        self, replica: str, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.replica = replica
        self.ttl = ttl_seconds
        self.clock = clock
        self.dirty = False
        self._live: dict[EnvKey, dict[str, Instance]] = {}
        self._http: dict[EnvKey, dict[str, Instance]] = {}
        self._peers: dict[str, _Peer] = {}
        self._listeners: list[Callable[[], None]] = []
        self._warned_at = 0.0
        self._unwarned = 0

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call listener each time the local instances change after the last summary taken."""
        self._listeners.append(listener)

    def changed(self) -> None:
        """The local instances changed: the next summary must be written."""
        if not self.dirty:
            self.dirty = True
            for listener in self._listeners:
                listener()

    def __len__(self) -> int:
        return sum(map(len, self._live.values())) + sum(map(len, self._http.values()))

    # WebSocket subscribers

    def subscribed(
        self,
        app: str,
        env: str,
        instance: str,
        labels: dict[str, str],
        address: str | None,
        after: int | None,
    ) -> Instance:
        """A WebSocket subscription of an identified instance; its record, listed until
        `unsubscribed`. The newest subscription of an id replaces an older one."""
        now = self.clock()
        record = Instance(
            app, env, instance, labels, self.replica, Transport.WEBSOCKET, address, now, now
        )
        # It says it holds `after` (it had it from some replica, or from its cache).
        record.delivered_version = after or None
        self._live.setdefault((app, env), {})[instance] = record
        self.changed()
        return record

    def unsubscribed(self, record: Instance) -> None:
        """The subscription of record ended (unsubscribe, socket closed, env deleted)."""
        key = (record.app, record.env)
        held = self._live.get(key)
        if held is not None and held.get(record.instance) is record:
            del held[record.instance]
            if not held:
                del self._live[key]
            self.changed()

    def delivered(self, record: Instance, version: int) -> None:
        """The server sent version to record's socket."""
        record.delivered_version = version
        self.changed()

    def acked(self, record: Instance, version: int) -> None:
        """record's instance applied version (versions only go up)."""
        record.last_seen = self.clock()
        if record.applied_version is None or version > record.applied_version:
            record.applied_version = version
        self.changed()

    # HTTP readers

    def read(
        self,
        app: str,
        env: str,
        instance: str,
        labels_text: str | None,
        transport: Transport,
        address: str | None,
        version: int | None,
    ) -> None:
        """An HTTP read by an instance that named itself; out of pattern it is not listed (a
        warning is logged, at most every WARN_EVERY_SECONDS)."""
        now = self.clock()
        held = self._http.get((app, env))
        record = held.get(instance) if held is not None else None
        if record is not None and record.labels_text == labels_text:
            # The common case: the same reader again; nothing parsed, nothing allocated.
            if (
                record.delivered_version != version
                or record.transport is not transport
                or record.address != address
                # last_seen alone is shipped at a coarse grain: not every read is a write
                or now - record.marked_seen >= self.ttl / 10
            ):
                record.delivered_version = version
                record.transport = transport
                record.address = address
                record.marked_seen = now
                self.changed()
            record.last_seen = now
            return
        try:
            check_instance(instance)
            labels = parse_labels(labels_text) if labels_text is not None else {}
        except ValueError as exc:
            self._warn(app, env, instance, str(exc))
            return
        if record is None:
            record = Instance(
                app, env, instance, labels, self.replica, transport, address, now, now
            )
            self._http.setdefault((app, env), {})[instance] = record
        record.labels = labels
        record.labels_text = labels_text
        record.transport = transport
        record.address = address
        record.last_seen = record.marked_seen = now
        record.delivered_version = version
        self.changed()

    def labels_text(self, app: str, env: str, instance: str) -> str | None:
        """The labels text an HTTP reader of this replica last named itself with, or None."""
        held = self._http.get((app, env))
        record = held.get(instance) if held is not None else None
        return record.labels_text if record is not None else None

    def _warn(self, app: str, env: str, instance: str, reason: str) -> None:
        now = self.clock()
        if now - self._warned_at < WARN_EVERY_SECONDS:
            self._unwarned += 1
            return
        log.warning(
            "%s/%s: a reader named itself %r, out of pattern (%s); served, not listed "
            "(%d more since the last warning)",
            app,
            env,
            instance[:140],
            reason,
            self._unwarned,
        )
        self._warned_at, self._unwarned = now, 0

    def sweep(self) -> int:
        """Forget HTTP readers not seen for ttl seconds; returns how many."""
        horizon = self.clock() - self.ttl
        gone = 0
        for key in list(self._http):
            held = self._http[key]
            for name in [n for n, r in held.items() if r.last_seen < horizon]:
                del held[name]
                gone += 1
            if not held:
                del self._http[key]
        if gone:
            self.changed()
        return gone

    def drop_app(self, app: str) -> None:
        """Forget the instances of a deleted app."""
        self._drop(lambda key: key[0] == app)

    def drop_env(self, app: str, env: str) -> None:
        """Forget the instances of a deleted env."""
        self._drop(lambda key: key == (app, env))

    def _drop(self, gone: Callable[[EnvKey], bool]) -> None:
        for table in (self._live, self._http):
            for key in [k for k in table if gone(k)]:
                del table[key]
                self.changed()

    # the cluster

    def summary(self) -> bytes:
        """This replica's instances as one compressed record for etcd; clears `dirty`.

        Over MAX_SUMMARY_BYTES the longest-unseen HTTP readers are left out (logged).
        """
        self.dirty = False
        records = sorted(
            self._local(), key=lambda r: (r.transport is not Transport.WEBSOCKET, -r.last_seen)
        )
        keep = len(records)
        while True:
            value = encode_summary(self.replica, self.clock(), records[:keep])
            if len(value) <= MAX_SUMMARY_BYTES or keep == 0:
                break
            keep = keep * 3 // 4
        if keep < len(records):
            log.warning(
                "instance summary too large: %d of %d instances shared with the cluster",
                keep,
                len(records),
            )
        return value

    def peer_summary(self, replica: str, revision: int, raw: bytes | None) -> None:
        """Another replica's summary as etcd holds it at revision (None: deleted)."""
        if replica == self.replica:
            return
        held = self._peers.get(replica)
        if held is not None and held.revision > revision:
            return
        if raw is None:
            self._peers.pop(replica, None)
        else:
            self._peers[replica] = _Peer(revision, raw)

    def peer_snapshot(self, revision: int, summaries: Mapping[str, tuple[int, bytes]]) -> None:
        """Every replica's summary as read at revision: the watch may have missed a change."""
        for replica, (mod_revision, raw) in summaries.items():
            self.peer_summary(replica, mod_revision, raw)
        for replica in [r for r, p in self._peers.items() if r not in summaries]:
            if self._peers[replica].revision < revision:
                del self._peers[replica]

    def forget_peers(self) -> None:
        """Drop every other replica's summary (etcd was replaced: its revisions start over)."""
        self._peers.clear()

    @property
    def peers(self) -> list[str]:
        """The replicas whose summaries are held."""
        return sorted(self._peers)

    def _local(self) -> Iterator[Instance]:
        for table in (self._live, self._http):
            for held in table.values():
                yield from held.values()

    def _of_env(self, app: str, env: str) -> Iterator[Instance]:
        key = (app, env)
        for table in (self._live, self._http):
            yield from table.get(key, {}).values()
        for replica, peer in list(self._peers.items()):
            if peer.decoded is None:
                try:
                    peer.decoded = decode_summary(peer.raw)
                except ValueError as exc:
                    log.error("ignoring the instance summary of %s: %s", replica, exc)
                    peer.decoded = {}
            yield from peer.decoded.get(key, ())

    def instances(self, app: str, env: str) -> list[Instance]:
        """Every instance of an env on every replica: one per id (its WebSocket subscription
        before an HTTP read, then the one seen last), HTTP readers within the ttl."""
        horizon = self.clock() - self.ttl
        best: dict[str, Instance] = {}
        for record in self._of_env(app, env):
            live = record.transport is Transport.WEBSOCKET
            if not live and record.last_seen < horizon:
                continue
            held = best.get(record.instance)
            if held is None or (live, record.last_seen) > (
                held.transport is Transport.WEBSOCKET,
                held.last_seen,
            ):
                best[record.instance] = record
        return sorted(best.values(), key=lambda r: (r.instance, r.replica))

    def listing(self, app: str, env: str, filters: Filters | None = None) -> dict[str, Any]:
        """`{"instances":[…],"summary":{"total","by_version"}}` of the instances kept."""
        kept = [r for r in self.instances(app, env) if filters is None or filters.keep(r)]
        by_version: dict[str, int] = {}
        for record in kept:
            if record.version is not None:
                name = str(record.version)
                by_version[name] = by_version.get(name, 0) + 1
        return {
            "instances": [r.to_json() for r in kept],
            "summary": {"total": len(kept), "by_version": by_version},
        }


# The summary on the wire: zlib of
#   {"format":1,"replica","at","envs":[[app, env, [[instance, labels, transport, address,
#    connected_at, last_seen, delivered, applied, gray], …]], …]}   (times: Unix milliseconds)
# Positional rows: 10,000 instances with three labels each are about 1.6 MB as JSON and
# 130 KB compressed (etcd takes up to 1.5 MiB a request by default).


def encode_summary(replica: str, at: float, records: list[Instance]) -> bytes:
    """A replica's instances as one compressed record."""
    envs: dict[EnvKey, list[list[Any]]] = {}
    for r in records:
        envs.setdefault((r.app, r.env), []).append(
            [
                r.instance,
                r.labels,
                r.transport.value,
                r.address,
                int(r.connected_at * 1000),
                int(r.last_seen * 1000),
                r.delivered_version,
                r.applied_version,
                r.gray,
            ]
        )
    body = {
        "format": SUMMARY_FORMAT,
        "replica": replica,
        "at": int(at * 1000),
        "envs": [[app, env, rows] for (app, env), rows in envs.items()],
    }
    # Level 1: most of level 9's gain on rows this repetitive, at a fraction of the time.
    return zlib.compress(orjson.dumps(body), 1)


def decode_summary(raw: bytes) -> dict[EnvKey, list[Instance]]:
    """A summary's instances by env; ValueError when it is not one."""
    try:
        body = orjson.loads(zlib.decompress(raw))
        if body.get("format") != SUMMARY_FORMAT:
            raise ValueError(f"summary format {body.get('format')!r}")
        replica = str(body["replica"])
        return {
            (str(app), str(env)): [_row(str(app), str(env), replica, row) for row in rows]
            for app, env, rows in body["envs"]
        }
    except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an instance summary: {exc}") from None


def _row(app: str, env: str, replica: str, row: list[Any]) -> Instance:
    name, labels, transport, address, connected_at, last_seen, delivered, applied, gray = row
    return Instance(
        app,
        env,
        str(name),
        {str(k): str(v) for k, v in labels.items()},
        replica,
        _TRANSPORTS[transport],
        None if address is None else str(address),
        int(connected_at) / 1000,
        int(last_seen) / 1000,
        None if delivered is None else int(delivered),
        None if applied is None else int(applied),
        bool(gray),
    )
