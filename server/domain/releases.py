"""Publishing the draft as an immutable release, rollback, and release history."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from server.domain.apps import require_env
from server.domain.canonical import canonical_json
from server.domain.context import DomainContext
from server.domain.diff import diff_items
from server.domain.drafts import Edits, draft_items, reconcile_draft
from server.domain.scopes import ADMIN, Permission, Principal
from server.domain.secrets import Snapshot, may_see, opened_items, opened_release, snapshot
from server.domain.validation import validate_comment
from server.errors import AppError, ErrorCode, not_found
from server.records import AuditAction, EnvRef, Fence, Gray, GrayStatus, Release, Stamp, utc_now
from server.secretbox import Keyring
from server.store.db import IntegrityError
from server.store.queries import Queries

log = logging.getLogger(__name__)

MAX_PAGE = 500

# Who the audit names for a release the server makes by itself (the store-behind-etcd repair).
SYSTEM = Principal(name="system", scopes=frozenset({ADMIN}), kind="system")


@dataclass(frozen=True)
class Planned:
    """A release about to be stored: its stored items text and its audit entry. With
    `gray_change`, the gray part of a release already stored changes too (a widen, promote or
    abandon, or a rollback ending a gray release); with no `items_json` no row is added, and
    `release` is that stored release in its new state."""

    release: Release
    items_json: str | None
    action: AuditAction
    summary: str
    gray_change: tuple[int, Gray] | None = None


Plan = Callable[[Queries, EnvRef, str], Awaitable[Planned]]


class Gate(Enum):
    """How a release passes its env's `approval_required`."""

    DIRECT = "direct"  # a publish or rollback: refused in an approval env
    EMERGENCY = "emergency"  # an admin's, with "emergency": true: let through, audited so
    APPROVED = "approved"  # an approved release request
    REPAIR = "repair"  # the store's latest release made again above etcd's (a restore)
    GRAY_COURSE = "gray_course"  # widen, promote, abandon: a started gray release's own course


def check_draft_revision(ref: EnvRef, draft_revision: int | None) -> None:
    """Refuse (409 draft_changed) when the draft is not at the revision the caller reviewed."""
    if draft_revision is not None and ref.draft_revision != draft_revision:
        raise AppError(
            ErrorCode.DRAFT_CHANGED,
            f"the draft of {ref.app}/{ref.name} is at revision {ref.draft_revision}, "
            f"not {draft_revision}; review it again",
        )


def sealed_publishable(
    keyring: Keyring,
    ref: EnvRef,
    latest: Release | None,
    items: Mapping[str, str],
    secrets: Collection[str],
    limit: int,
) -> Snapshot:
    """The snapshot (secrets sealed) of clear items about to become the next release, after
    latest (opened); refuses items and secret flags equal to the latest release's (409
    nothing_to_publish) or too large as stored (413 release_too_large). Releases and the
    items a release request freezes are stored through here."""
    snap = snapshot(keyring, ref.app, ref.name, items, secrets)
    if latest is not None and (latest.items, latest.secret_keys) == (items, snap.secret_keys):
        raise AppError(
            ErrorCode.NOTHING_TO_PUBLISH,
            f"the draft equals release {latest.version}; change an item first",
        )
    _check_size(len(snap.text.encode()), limit)
    return snap


async def rollback_target(
    q: Queries, keyring: Keyring, ref: EnvRef, version: int
) -> tuple[Release, Release]:
    """(the release to copy, the latest release), both opened; 404 for an unknown version,
    409 nothing_to_publish when it has the latest release's items and secret flags."""
    stored = await q.release(ref.id, version)
    if stored is None:
        raise not_found(f"release {version} of {ref.app}/{ref.name}")
    stored_latest = await q.latest_release(ref.id)
    assert stored_latest is not None
    target = opened_release(keyring, stored)
    latest = opened_release(keyring, stored_latest)
    if (latest.items, latest.secret_keys) == (target.items, target.secret_keys):
        raise AppError(
            ErrorCode.NOTHING_TO_PUBLISH,
            f"release {version} has the same items as the latest release {latest.version}",
        )
    return target, latest


def _check_fence(ref: EnvRef, fence: Fence) -> None:
    """Refuse a writer whose lock a newer holder has already used (a lost lease)."""
    if fence.epoch == ref.fence_epoch and fence.token < ref.fence_token:
        raise AppError(
            ErrorCode.LOCK_LOST,
            f"the publish lock of {ref.app}/{ref.name} was lost before the write; retry",
        )


def check_no_gray(latest: Release | None) -> None:
    """Refuse (409 gray_active) a release that is not the active gray release's own course."""
    if latest is not None and latest.gray_active:
        raise AppError(
            ErrorCode.GRAY_ACTIVE,
            f"version {latest.version} of {latest.app}/{latest.env} is in gray: promote or "
            "abandon it (or roll back) first",
        )


def _check_gate(ref: EnvRef, gate: Gate) -> None:
    if ref.approval_required and gate is Gate.DIRECT:
        raise AppError(
            ErrorCode.APPROVAL_REQUIRED,
            f"{ref.app}/{ref.name} requires approval: make a release request "
            '(an admin may send "emergency": true)',
        )


def _check_size(size: int, limit: int) -> None:
    """Refuse a release larger than the store and etcd are set up to carry."""
    if size > limit:
        raise AppError(
            ErrorCode.RELEASE_TOO_LARGE,
            f"the draft is {size} bytes as a release; at most {limit} (limits.max_release_bytes)",
        )


async def opened_draft(
    q: Queries, keyring: Keyring, ref: EnvRef
) -> tuple[dict[str, str], frozenset[str]]:
    """The draft's values in clear and its secret keys."""
    stored = await q.items(ref.id)
    draft = {i.key: i.value for i in opened_items(keyring, ref.app, ref.name, stored)}
    return draft, frozenset(i.key for i in stored if i.secret)


class _AlreadyAbove(Exception):
    """The store's latest release is already above the version to pass: nothing to make."""


def restored_release(latest: Release, version: int, author: str, now: str) -> Release:
    """The store's latest release made again as `version`, above what clients may have seen."""
    return Release(
        app=latest.app,
        env=latest.env,
        version=version,
        checksum=latest.checksum,
        author=author,
        comment=f"the store's version {latest.version} again, after a restore",
        created_at=now,
        items=latest.items,
        secret_keys=latest.secret_keys,
    )


async def ended_gray(q: Queries, ref: EnvRef) -> tuple[int, Gray] | None:
    """The abandoned state of the env's active gray release, which a new release ends."""
    latest = await q.latest_release(ref.id)
    if latest is None or latest.gray is None or not latest.gray.active:
        return None
    gray = latest.gray
    return latest.version, replace(gray, status=GrayStatus.ABANDONED, step=gray.step + 1, main=None)


async def _record_fence(q: Queries, ref: EnvRef, fence: Fence) -> None:
    if (fence.epoch, fence.token) != (ref.fence_epoch, ref.fence_token):
        await q.set_fence(ref.id, fence.epoch, fence.token)


def gate_for(principal: Principal, emergency: bool) -> Gate:
    """An emergency is an admin's only (403 otherwise, whatever the env)."""
    if not emergency:
        return Gate.DIRECT
    if not principal.is_admin:
        raise AppError(
            ErrorCode.FORBIDDEN, f"{principal.name} needs to be an admin for an emergency release"
        )
    return Gate.EMERGENCY


class ReleaseService:
    """Publish, roll back and read releases."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

    def next_version(self, ref: EnvRef, latest: Release | None) -> int:
        """After the latest release, and after anything this replica served: a store restored
        from an older backup must not hand out a version a client already holds."""
        stored = latest.version if latest else ref.version_floor
        return max(stored, self.ctx.published.version(ref.app, ref.name)) + 1

    async def release(
        self, principal: Principal, app: str, env: str, plan: Plan, gate: Gate = Gate.DIRECT
    ) -> Release:
        """Under the env's publish lock, in one transaction: plan a release, store it with its
        audit entry and the lock's fence, and mark the env's pending requests stale (their base
        is no longer the latest); then distribute it to every replica.

        Every release goes through here: publishes, rollbacks and approved requests.
        """
        principal.require(app, Permission.PUBLISH)
        async with self.ctx.coordinator.publish_lock(app, env) as fence:
            now = utc_now()
            try:
                async with self.ctx.store.transaction() as q:
                    ref = await require_env(q, app, env, lock=True)
                    _check_fence(ref, fence)
                    _check_gate(ref, gate)
                    planned = await plan(q, ref, now)
                    if gate is Gate.EMERGENCY and ref.approval_required:
                        planned = replace(
                            planned,
                            action=AuditAction.RELEASE_EMERGENCY,
                            summary=f"emergency ({planned.action.value}): {planned.summary}",
                        )
                    release = planned.release
                    if planned.gray_change is not None:
                        await q.set_gray(ref.id, *planned.gray_change)
                    if planned.items_json is not None:
                        await q.insert_release(ref.id, release, planned.items_json)
                        await q.stale_release_requests(ref.id, now)
                    await _record_fence(q, ref, fence)
                    await q.add_audit(
                        now,
                        principal.actor,
                        planned.action,
                        f"{app}/{env}@{release.version}",
                        planned.summary,
                        app,
                        env,
                    )
            except IntegrityError:
                raise AppError(
                    ErrorCode.VERSION_CONFLICT, "another publish took this version; retry"
                ) from None
            # Sealed, as the store holds it: etcd and the other replicas never see a clear value.
            await self.ctx.coordinator.distribute(release, fence)
        log.info(
            "%s %s/%s version %d by %s", planned.action, app, env, release.version, principal.actor
        )
        return opened_release(self.ctx.keyring, release)

    def plan_items(
        self, author: str, items: Mapping[str, str], secrets: Collection[str], comment: str
    ) -> Plan:
        """The plan of a release of these clear items, secrets among them sealed (the draft's,
        or those a request froze)."""
        keyring = self.ctx.keyring

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            stored_latest = await q.latest_release(ref.id)
            check_no_gray(stored_latest)
            latest = opened_release(keyring, stored_latest) if stored_latest else None
            snap = sealed_publishable(
                keyring, ref, latest, items, secrets, self.ctx.limits.max_release_bytes
            )
            change = diff_items(latest.items if latest else {}, items, None)
            release = Release(
                app=ref.app,
                env=ref.name,
                version=self.next_version(ref, latest),
                checksum=snap.checksum,
                author=author,
                comment=comment,
                created_at=now,
                items=snap.items,
                secret_keys=snap.secret_keys,
            )
            summary = (
                f"published version {release.version}: {len(change.added)} added, "
                f"{len(change.changed)} changed, {len(change.removed)} removed"
            )
            return Planned(release, snap.text, AuditAction.RELEASE_PUBLISH, summary)

        return plan

    def plan_rollback(self, author: str, version: int, comment: str) -> Plan:
        """The plan of a release copying release `version`; it resets the draft to it."""
        keyring = self.ctx.keyring

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            target, latest = await rollback_target(q, keyring, ref, version)
            snap = snapshot(keyring, ref.app, ref.name, target.items, target.secret_keys)
            release = Release(
                app=ref.app,
                env=ref.name,
                version=self.next_version(ref, latest),
                checksum=snap.checksum,
                author=author,
                comment=comment or f"rollback to version {version}",
                created_at=now,
                items=snap.items,
                rollback_of=version,
                secret_keys=snap.secret_keys,
            )
            # No items limit here: the draft goes back to what was once published. But not past
            # today's max_release_bytes (unless it shrinks): the release would be as large.
            stored = await draft_items(q, ref)
            secret_flags = {k: k in target.secret_keys for k in target.items}
            await reconcile_draft(
                q,
                ref,
                keyring,
                stored,
                target.items,
                author,
                now,
                self.ctx.limits.max_release_bytes,
                edits=Edits(secrets=secret_flags),
            )
            summary = f"rolled back to version {version} as version {release.version}"
            ended = await ended_gray(q, ref)
            if ended is not None:
                summary += f" (gray version {ended[0]} abandoned)"
            return Planned(release, snap.text, AuditAction.RELEASE_ROLLBACK, summary, ended)

        return plan

    async def publish(
        self,
        principal: Principal,
        app: str,
        env: str,
        comment: str,
        draft_revision: int | None = None,
        emergency: bool = False,
    ) -> Release:
        """Make the draft the next release; 409 nothing_to_publish when it equals the latest,
        draft_changed when it is no longer at draft_revision (what the publisher reviewed)."""
        comment = validate_comment(comment)
        gate = gate_for(principal, emergency)

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            check_draft_revision(ref, draft_revision)
            draft, secrets = await opened_draft(q, self.ctx.keyring, ref)
            return await self.plan_items(principal.name, draft, secrets, comment)(q, ref, now)

        return await self.release(principal, app, env, plan, gate)

    async def rollback(
        self,
        principal: Principal,
        app: str,
        env: str,
        version: int,
        comment: str,
        emergency: bool = False,
    ) -> Release:
        """A new release with the items of an earlier one; the draft is reset to them."""
        comment = validate_comment(comment)
        gate = gate_for(principal, emergency)
        return await self.release(
            principal, app, env, self.plan_rollback(principal.name, version, comment), gate
        )

    async def restore_above(self, app: str, env: str, seen: int) -> Release | None:
        """Store wins: when etcd holds `seen`, higher than the store's latest release (the store
        was restored from an older backup), make that release again above `seen` and
        distribute it, so every replica and client moves up to the store's items. None when
        the env has no release or is already above `seen`."""

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            latest = await q.latest_release(ref.id)
            if latest is None or latest.version >= seen:
                raise _AlreadyAbove
            version = max(seen, ref.version_floor, self.next_version(ref, latest) - 1) + 1
            release = restored_release(latest, version, SYSTEM.name, now)
            summary = (
                f"etcd had version {seen}, the store {latest.version}: "
                f"the store's items published again as version {version}"
            )
            # Sealed as stored: the values stay under the same item, env and app.
            stored = canonical_json(latest.items)
            return Planned(release, stored, AuditAction.RELEASE_RESTORE, summary)

        try:
            # The store's own release again: no approval applies to the repair.
            return await self.release(SYSTEM, app, env, plan, Gate.REPAIR)
        except _AlreadyAbove:
            return None
        except AppError as exc:
            if exc.error is ErrorCode.NOT_FOUND:
                return None  # the env was deleted meanwhile
            raise

    async def list_releases(
        self, principal: Principal, app: str, env: str, limit: int, before: int | None
    ) -> list[Release]:
        """Releases newest first, without items."""
        principal.require(app, Permission.VIEW)
        limit = max(1, min(limit, MAX_PAGE))
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            return await q.releases(ref.id, limit, before)

    async def get_release(self, principal: Principal, app: str, env: str, version: int) -> Release:
        """One release with its items; secret values opened only for those who may see them
        (Release.to_json(reveal=False) shows the others null)."""
        principal.require(app, Permission.VIEW)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            release = await q.release(ref.id, version)
        if release is None:
            raise not_found(f"release {version} of {app}/{env}")
        return opened_release(self.ctx.keyring, release) if may_see(principal, app) else release

    async def latest_releases(self) -> list[Release]:
        """The newest release of every env, sealed, from the store (loading and repair)."""
        async with self.ctx.store.reader() as q:
            return await q.latest_releases()

    async def latest_stamps(self) -> dict[tuple[str, str], Stamp]:
        """The newest (version, gray step) of every env, from the store (the refresh's cheap
        comparison)."""
        async with self.ctx.store.reader() as q:
            return await q.latest_stamps()

    async def latest_release(self, app: str, env: str) -> Release | None:
        """The newest release of one env, sealed, from the store."""
        async with self.ctx.store.reader() as q:
            ref = await q.env(app, env)
            return await q.latest_release(ref.id) if ref is not None else None
