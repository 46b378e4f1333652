"""Keeping a replica's published configs in step with etcd, and etcd with the store.

- **Watch.** One watch covers the whole prefix from `last_revision + 1`: release records go
  into `PublishedConfigs` (which only ever goes up in version), events to the coordinator.
  A broken watch (member lost, failover) is created again from `last_revision + 1`; a
  compacted revision reloads the prefix (`reload`): every release record is applied and the
  events still alive (their lease is 60 s) newer than `last_revision` are replayed.
- **Refresh** (every `refresh_interval`), one named step each:
  1. `_catch_up_from_store`: while the watch is down, the cache takes the store's releases.
  2. `_read_etcd`: one keys-only read of the prefix (release records' revisions, claimed
     locks), then the values of only the records whose mod_revision changed since the last
     refresh (the others' stamps are remembered), and the instance summaries: an idle
     interval reads revisions, not every release's items. An etcd with another cluster id or
     an older revision was replaced, so our revisions are forgotten and the prefix reloaded.
  3. `_repair_etcd`: an env whose record is missing or older than the store, and whose lock
     nobody claims (no publish is in flight; a live holder distributes itself), is written
     with a compare-and-swap on the record's mod_revision (or absence), so a repair never
     overwrites a newer write. A record ahead of the store (the store was restored from an
     older backup) is answered by the store winning without any version going down: the
     store's latest release is made again above etcd's version, under the env's fenced
     publish lock, and distributed like a publish (`ReleaseSource.restore_above`).
  4. `_delete_stale`: a record whose app the store no longer has is deleted the same way
     (after a second look at the store).
  5. `_apply_missed`: a record already in etcd at the previous refresh that the cache still
     lacks is applied, and the watch restarted on another endpoint (it is stalled or
     skipped it).
  6. `_fix_cache_ahead`: apps deleted (or re-created), and envs deleted, while this replica
     missed the event are dropped from the cache (apps loaded again from the store).
- **Instance summaries** (`{prefix}/instances/`, etcd_instances) ride on the same watch, the
  reload and step 2's read: each hands the other replicas' summaries to the registry, which
  keeps the newest by mod_revision (so a summary or a lease expiry the watch missed is
  caught up at the next refresh).
  Every repair is counted and logged; `refresh` returns how many it made.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aetcd
import aetcd.exceptions

from server.coord.base import ReleaseSource
from server.coord.etcd_conn import (
    TRANSIENT,
    EtcdConnection,
    EtcdUnavailable,
    cancelling,
    refused,
)
from server.coord.etcd_keys import (
    Keys,
    ReleaseRecord,
    UnknownEvent,
    decode_event,
    decode_release,
    encode_release,
)
from server.errors import AppError
from server.events import ClusterEvent
from server.instances import InstanceRegistry
from server.published import PublishedConfigs
from server.records import Release, Stamp

log = logging.getLogger(__name__)

ETCD_WITHIN = 4.0
EnvKey = tuple[str, str]


@dataclass(frozen=True)
class _Entry:
    """What the refresh knows of a release record: its stamp and the revision that last wrote
    it; the decoded record itself only in the refresh that read its value."""

    key: bytes
    stamp: Stamp
    mod_revision: int
    record: ReleaseRecord | None = None

    @property
    def version(self) -> int:
        """The record's release version."""
        return self.stamp[0]


@dataclass(frozen=True)
class _Fetched:
    """One record read by key: what a prefix read's KeyValue gives the refresh."""

    key: bytes
    mod_revision: int
    value: bytes


# Records changed since the last refresh fetched one by one in a transaction up to this many;
# more (the first refresh, a burst of publishes) are read with one read of the prefix.
FETCH_ONE_BY_ONE = 64


@dataclass
class _EtcdState:
    """What one refresh read from etcd: the release records and the envs whose lock is claimed."""

    revision: int
    records: dict[EnvKey, _Entry] = field(default_factory=dict)
    claimed: set[EnvKey] = field(default_factory=set)


class ReleaseSync:
    """The watch, the reload and the scheduled refresh of one replica."""

    def __init__(
        self,
        conn: EtcdConnection,
        keys: Keys,
        replica_id: str,
        published: PublishedConfigs,
        source: ReleaseSource,
        on_event: Callable[[ClusterEvent], None],
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.replica_id = replica_id
        self.published = published
        self.source = source
        self.on_event = on_event
        self.last_revision = 0
        self.cluster_id: int | None = None
        self.watching = False
        self.repairs: collections.Counter[str] = collections.Counter()
        self._need_reload = True
        self._watch: Any = None
        self._previous_snapshot = 0  # etcd revision read by the previous refresh
        # The release records the last refresh read, by key: their stamps are reused while
        # their mod_revision is unchanged.
        self._known: dict[bytes, tuple[EnvKey, _Entry]] = {}
        # Where the other replicas' instance summaries go (set before start; None: nowhere).
        self.instances: InstanceRegistry | None = None

    def count(self, kind: str, message: str, *args: object) -> None:
        """Count and log one repair."""
        self.repairs[kind] += 1
        log.warning("repair %s: " + message, kind, *args)

    # loading

    async def load_store(self) -> None:
        """Apply the store's latest releases (what is true even while etcd is away)."""
        for release in await self.source.latest_releases():
            self.published.apply(release)

    async def reload(self, within: float = ETCD_WITHIN) -> None:
        """Read the whole prefix: apply every release, replay the events not yet seen."""
        snapshot = await self.conn.call(lambda c: c.get_prefix(self.keys.root), within=within)
        events = []
        summaries: dict[str, tuple[int, bytes]] = {}
        known: dict[bytes, tuple[EnvKey, _Entry]] = {}
        for kv in snapshot:
            if kv.key.startswith(self.keys.releases):
                try:
                    record = decode_release(kv.value)
                except ValueError as exc:
                    log.error("ignoring a malformed release record: %s", exc)
                    continue
                await self._apply_record(record)
                release = record.release
                # The next refresh reads revisions only: these records are known as of now.
                entry = _Entry(kv.key, release.stamp, kv.mod_revision)
                known[kv.key] = ((release.app, release.env), entry)
            elif kv.key.startswith(self.keys.instances):
                self._collect_summary(kv, summaries)
            elif (
                kv.key.startswith(self.keys.events)
                and self.last_revision
                and kv.mod_revision > self.last_revision
            ):
                events.append(kv)
        for kv in sorted(events, key=lambda kv: kv.mod_revision):
            self._handle_event(kv.value)
        if self.instances is not None:
            self.instances.peer_snapshot(snapshot.header.revision, summaries)
        self.last_revision = max(self.last_revision, snapshot.header.revision)
        self.cluster_id = snapshot.header.cluster_id
        self._known = known
        self._need_reload = False
        log.info(
            "loaded %d published envs from etcd at revision %d",
            len(self.published),
            self.last_revision,
        )

    async def _apply_value(self, value: bytes) -> None:
        try:
            record = decode_release(value)
        except ValueError as exc:
            log.error("ignoring a malformed release record: %s", exc)
            return
        await self._apply_record(record)

    async def _apply_record(self, record: ReleaseRecord) -> None:
        release = record.release
        # A record whose secrets are sealed with a key no longer loaded (written before a
        # rotation) is read again from the store, which the rotation re-sealed.
        if record.inline and self.published.opens(release) and self._main_at_hand(release):
            self.published.apply(release)
        elif self.published.stamp(release.app, release.env) < release.stamp:
            # Too large to travel through etcd (or a gray release's main release with it):
            # the store has it.
            stored = await self.source.latest_release(release.app, release.env)
            if stored is not None:
                self.published.apply(stored)

    def _main_at_hand(self, release: Release) -> bool:
        """An active gray release can be served here: its main release came with it, or is
        the one held."""
        gray = release.gray
        if gray is None or not gray.active or gray.main is not None:
            return True
        held = self.published.get(release.app, release.env)
        return held is not None and held.version == gray.main_version

    def _collect_summary(self, kv: Any, summaries: dict[str, tuple[int, bytes]]) -> None:
        replica = self.keys.replica_of_instances(kv.key)
        if replica is not None:
            summaries[replica] = (kv.mod_revision, kv.value)

    def _handle_event(self, value: bytes) -> None:
        try:
            event, origin = decode_event(value)
        except UnknownEvent as exc:
            log.warning("ignoring %s (written by a newer replica?)", exc)
            return
        except ValueError as exc:
            log.error("ignoring a malformed event: %s", exc)
            return
        if origin != self.replica_id:  # our own were delivered when announced
            self.on_event(event)

    # the watch

    async def run_watch(self) -> None:
        """Follow the prefix for ever: reload when needed, re-create a broken watch."""
        backoff = 0.1
        while True:
            client: aetcd.Client | None = None
            try:
                if self._need_reload:
                    await self.reload()
                client = self.conn.client()
                watch = await client.watch_prefix(
                    self.keys.root, start_revision=self.last_revision + 1
                )
                self._watch = watch
                self.watching = True
                backoff = 0.1
                async for event in watch:
                    await self._handle_watch_event(event)
                log.info("etcd watch ended at revision %d; resuming", self.last_revision)
            except aetcd.exceptions.RevisionCompactedError as exc:
                log.warning(
                    "etcd compacted past revision %d (%s); reloading", self.last_revision, exc
                )
                self._need_reload = True
            except TRANSIENT as exc:
                if client is not None:
                    self.conn.failed(client, exc)
            except EtcdUnavailable as exc:
                log.debug("etcd watch: %s", exc)
            except aetcd.exceptions.ClientError as exc:
                if refused(exc) and client is not None:
                    # e.g. etcd refused to create the watch on a stream whose token expired
                    self.conn.failed(client, exc)
                else:
                    log.warning("etcd watch failed: %s; resuming", exc)
            except asyncio.CancelledError:
                if cancelling():
                    raise
                # grpc cancelled the watch because a failover closed its channel
            except Exception:
                # e.g. the store failed while fetching a large release: that event is retried
                log.exception("etcd watch handler failed at revision %d", self.last_revision)
            finally:
                self.watching = False
                self._watch = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _handle_watch_event(self, event: Any) -> None:
        key: bytes = event.kv.key
        if key.startswith(self.keys.releases):
            # A deleted record is left to the app_deleted event or to the refresh.
            if event.kind == "PUT":
                await self._apply_value(event.kv.value)
        elif key.startswith(self.keys.events) and event.kind == "PUT":
            self._handle_event(event.kv.value)
        elif self.instances is not None and key.startswith(self.keys.instances):
            replica = self.keys.replica_of_instances(key)
            if replica is not None:
                value = event.kv.value if event.kind == "PUT" else None
                self.instances.peer_summary(replica, event.kv.mod_revision, value)
        self.last_revision = max(self.last_revision, event.kv.mod_revision)

    async def restart_watch(self, fail_over: bool = False) -> None:
        """End the current watch; run_watch creates it again from last_revision + 1."""
        watch = self._watch
        if fail_over:
            self.conn.failed(self.conn.client(), RuntimeError("watch restarted"))
        if watch is not None:
            with contextlib.suppress(Exception):  # its client may be closed already
                await watch.cancel()

    # the scheduled refresh

    async def refresh(self) -> int:
        """Repair etcd from the store and the cache from both; returns how many repairs."""
        before = sum(self.repairs.values())
        cached_before = self.published.versions()
        stored = await self.source.latest_stamps()
        if not self.watching:
            await self._catch_up_from_store(stored)
        state = await self._read_etcd()
        await self._repair_etcd(stored, state)
        await self._delete_stale(state.records, stored, state.claimed)
        missed = await self._apply_missed(stored, state)
        self._previous_snapshot = state.revision
        await self._fix_cache_ahead(cached_before, stored, state.records)
        if missed and self.watching:
            await self.restart_watch(fail_over=True)
        return sum(self.repairs.values()) - before

    async def _catch_up_from_store(self, stored: dict[EnvKey, Stamp]) -> None:
        """While the watch is down, apply the store's releases the cache is behind on."""
        for env_key, stamp in stored.items():
            if self.published.stamp(*env_key) >= stamp:
                continue
            release = await self.source.latest_release(*env_key)
            if release is not None and self.published.apply(release):
                self.count(
                    "cache_behind_store",
                    "%s/%s version %d applied from the store (watch down)",
                    release.app,
                    release.env,
                    release.version,
                )

    async def _read_etcd(self) -> _EtcdState:
        """Read the prefix's revisions once, then what changed: release records, claimed
        locks, instance summaries; reload if etcd was replaced."""
        seen = self.last_revision  # the watch may move on while we read
        snapshot = await self.conn.call(
            lambda c: c.get_prefix(self.keys.root, keys_only=True), within=ETCD_WITHIN
        )
        header = snapshot.header
        if self.cluster_id is not None and (
            header.cluster_id != self.cluster_id or header.revision < seen
        ):
            await self._forget_revisions(header.cluster_id, header.revision, seen)
        state = _EtcdState(header.revision)
        known: dict[bytes, tuple[EnvKey, _Entry]] = {}
        changed: dict[bytes, int] = {}
        has_summaries = False
        for kv in snapshot:
            if kv.key.startswith(self.keys.releases):
                held = self._known.get(kv.key)
                if held is not None and held[1].mod_revision == kv.mod_revision:
                    known[kv.key] = held
                else:
                    changed[kv.key] = kv.mod_revision
            elif kv.key.startswith(self.keys.locks):
                locked = self.keys.env_of(kv.key, self.keys.locks)
                if locked is not None:
                    state.claimed.add(locked)
            elif kv.key.startswith(self.keys.instances):
                has_summaries = True
        for kv in await self._fetch_records(changed):
            try:
                record = decode_release(kv.value)
            except ValueError:
                continue
            release = record.release
            entry = _Entry(kv.key, release.stamp, kv.mod_revision, record)
            known[kv.key] = ((release.app, release.env), entry)
        self._known = known
        state.records = dict(known.values())
        if self.instances is not None:
            # The watch may have missed a summary, or a lease's expiry deleting one.
            summaries: dict[str, tuple[int, bytes]] = {}
            if has_summaries:
                found = await self.conn.call(
                    lambda c: c.get_prefix(self.keys.instances), within=ETCD_WITHIN
                )
                for kv in found:
                    self._collect_summary(kv, summaries)
            self.instances.peer_snapshot(header.revision, summaries)
        return state

    async def _fetch_records(self, changed: dict[bytes, int]) -> list[Any]:
        """The records of the keys given (with the revision the keys-only read saw), as they
        are now: a record written again meanwhile comes with its newer revision."""
        if not changed:
            return []
        if len(changed) > FETCH_ONE_BY_ONE:
            found = await self.conn.call(
                lambda c: c.get_prefix(self.keys.releases), within=ETCD_WITHIN
            )
            return [kv for kv in found if kv.key in changed]
        keys = list(changed)

        async def gets(c: aetcd.Client) -> list[_Fetched]:
            t = c.transactions
            _, responses = await c.transaction(
                compare=[], success=[t.get(key) for key in keys], failure=[]
            )
            # Each get answers (value, metadata) pairs; a key deleted meanwhile answers none.
            return [
                _Fetched(meta.key, int(meta.mod_revision), value)
                for response in responses
                for value, meta in response
            ]

        fetched: list[_Fetched] = await self.conn.call(gets, within=ETCD_WITHIN)
        return fetched

    async def _forget_revisions(self, cluster_id: int, revision: int, seen: int) -> None:
        """etcd was wiped, rebuilt or restored: our revisions mean nothing there; reload."""
        log.warning(
            "etcd changed under us (cluster %x at revision %d, we were at %x/%d); reloading",
            cluster_id,
            revision,
            self.cluster_id,
            seen,
        )
        self.cluster_id = cluster_id
        self.last_revision = 0
        self._previous_snapshot = 0
        self._known = {}
        self._need_reload = True
        if self.instances is not None:
            self.instances.forget_peers()  # the reload reads them again
        await self.restart_watch()

    async def _repair_etcd(self, stored: dict[EnvKey, Stamp], state: _EtcdState) -> None:
        """Write the store's release where etcd's record is missing or older (by version, or
        by gray step: a widen or promote the store has and etcd lacks); where it is newer,
        make the store's release again above it. Never while the env's lock is claimed: a
        live holder distributes itself."""
        for env_key, stored_stamp in stored.items():
            entry = state.records.get(env_key)
            if env_key in state.claimed:
                continue
            if entry is None or entry.stamp < stored_stamp:
                release = await self.source.latest_release(*env_key)
                if release is not None:
                    await self._repair_record(release, entry)
            elif entry.version > stored_stamp[0]:
                await self._store_behind(env_key, stored_stamp[0], entry.version)

    async def _store_behind(self, env_key: EnvKey, stored_version: int, seen: int) -> None:
        """etcd holds a version the store lacks: clients may hold it too, so the store's
        release moves above it (store wins, no version goes down)."""
        try:
            release = await self.source.restore_above(*env_key, seen)
        except AppError as exc:
            # Lock or store trouble: the next refresh tries again; other envs go on.
            log.warning("%s/%s: store behind etcd, not repaired yet: %s", *env_key, exc.message)
            return
        if release is not None:
            self.count(
                "store_behind_etcd",
                "%s/%s: etcd had version %d, the store %d; the store's release is now version %d",
                *env_key,
                seen,
                stored_version,
                release.version,
            )

    async def _apply_missed(self, stored: dict[EnvKey, Stamp], state: _EtcdState) -> bool:
        """Apply records the watch should have brought by now; whether there were any."""
        missed = False
        for env_key, entry in state.records.items():
            stamp = entry.stamp
            if (
                # in etcd for a whole interval: the watch should have brought it long ago
                entry.mod_revision <= self._previous_snapshot
                # unless the watch went past the snapshot (then a later change may explain)
                and self.last_revision <= state.revision
                and self.published.stamp(*env_key) < stamp
                and env_key in stored  # a record the store lacks is stale, not missed
                and stamp <= stored[env_key]
            ):
                record = entry.record or await self._record_at(entry)
                if record is None:
                    continue  # written again since: the watch, or the next refresh, has it
                missed = True
                await self._apply_record(record)
                self.count(
                    "cache_missed",
                    "%s/%s version %d (gray step %d) was not delivered by the watch "
                    "(watch at revision %d)",
                    *env_key,
                    *stamp,
                    self.last_revision,
                )
        return missed

    async def _record_at(self, entry: _Entry) -> ReleaseRecord | None:
        """The decoded record of an entry the refresh remembered, if etcd still has it as then."""
        found = await self.conn.call(lambda c: c.get(entry.key), within=ETCD_WITHIN)
        if found is None or int(found.mod_revision) != entry.mod_revision:
            return None
        try:
            return decode_release(found.value)
        except ValueError:
            return None

    async def _repair_record(self, release: Release, entry: _Entry | None) -> None:
        """Write one release to etcd, unless its record changed since we read it (CAS)."""
        key = self.keys.release(release.app, release.env)

        async def cas(c: aetcd.Client) -> bool:
            t = c.transactions
            guard = t.mod(key) == entry.mod_revision if entry else t.create(key) == 0
            ok, _ = await c.transaction(
                compare=[guard], success=[t.put(key, encode_release(release))], failure=[]
            )
            return bool(ok)

        if await self.conn.call(cas, within=ETCD_WITHIN):
            self.count(
                "etcd_missing" if entry is None else "etcd_behind_store",
                "%s/%s version %d written to etcd from the store (etcd had %s)",
                release.app,
                release.env,
                release.version,
                entry.version if entry else "nothing",
            )
            self.published.apply(release)

    async def _delete_stale(
        self, records: dict[EnvKey, _Entry], stored: dict[EnvKey, Stamp], claimed: set[EnvKey]
    ) -> None:
        """Delete records of envs the store does not have (nobody publishing them)."""
        candidates = {k: e for k, e in records.items() if k not in stored and k not in claimed}
        if not candidates:
            return
        # A second look: an env published after the first read is in etcd, not in `stored`.
        current = await self.source.latest_stamps()
        for env_key, entry in candidates.items():
            if env_key in current:
                continue
            key = self.keys.release(*env_key)

            async def cas(c: aetcd.Client, key: bytes = key, rev: int = entry.mod_revision) -> bool:
                t = c.transactions
                ok, _ = await c.transaction(
                    compare=[t.mod(key) == rev], success=[t.delete(key)], failure=[]
                )
                return bool(ok)

            if await self.conn.call(cas, within=ETCD_WITHIN):
                self.count(
                    "etcd_stale", "%s/%s: deleted a record the store does not have", *env_key
                )

    async def _fix_cache_ahead(
        self,
        cached_before: dict[EnvKey, int],
        stored: dict[EnvKey, Stamp],
        records: dict[EnvKey, _Entry],
    ) -> None:
        """Apps deleted (or deleted and created again) while this replica missed the event."""
        stored_apps = {app for app, _ in stored}
        gone = {app for app, _ in cached_before if app not in stored_apps}
        recreated = {
            env_key[0]
            for env_key, version in cached_before.items()
            if env_key in stored
            and version > stored[env_key][0]
            and (env_key not in records or records[env_key].version <= stored[env_key][0])
            and self.published.version(*env_key) > stored[env_key][0]
        }
        for app in sorted(gone | recreated):
            self.published.remove_app(app)
            for release_app, release_env in stored:
                if release_app == app:
                    release = await self.source.latest_release(release_app, release_env)
                    if release is not None:
                        self.published.apply(release)
            self.count("cache_stale", "app %s: dropped releases the store no longer has", app)
        # Envs deleted (their app kept) while this replica missed the event; a namesake created
        # again goes on above the deleted one's versions, so it only reappears by publishing.
        for app, env in sorted(cached_before):
            if app in stored_apps and (app, env) not in stored and self.published.get(app, env):
                self.published.remove_env(app, env)
                self.count("cache_stale", "%s/%s: dropped an env the store no longer has", app, env)
