"""Publishing the draft as an immutable release, rollback, and release history."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.domain.apps import require_env
from server.domain.canonical import canonical_json, checksum_of_canonical
from server.domain.context import DomainContext
from server.domain.diff import diff_items
from server.domain.drafts import draft_items, reconcile_draft
from server.domain.scopes import ADMIN, Permission, Principal
from server.domain.validation import validate_comment
from server.errors import AppError, ErrorCode, not_found
from server.records import AuditAction, EnvRef, Fence, Release, utc_now
from server.store.db import IntegrityError
from server.store.queries import Queries

log = logging.getLogger(__name__)

MAX_PAGE = 500

# Who the audit names for a release the server makes by itself (the store-behind-etcd repair).
SYSTEM = Principal(name="system", scopes=frozenset({ADMIN}), kind="system")


@dataclass(frozen=True)
class _Planned:
    """A release about to be stored: its canonical items text and its audit entry."""

    release: Release
    items_json: str
    action: AuditAction
    summary: str


_Plan = Callable[[Queries, EnvRef, str], Awaitable[_Planned]]


def _check_fence(ref: EnvRef, fence: Fence) -> None:
    """Refuse a writer whose lock a newer holder has already used (a lost lease)."""
    if fence.epoch == ref.fence_epoch and fence.token < ref.fence_token:
        raise AppError(
            ErrorCode.LOCK_LOST,
            f"the publish lock of {ref.app}/{ref.name} was lost before the write; retry",
        )


def _check_size(size: int, limit: int) -> None:
    """Refuse a release larger than the store and etcd are set up to carry."""
    if size > limit:
        raise AppError(
            ErrorCode.RELEASE_TOO_LARGE,
            f"the draft is {size} bytes as a release; at most {limit} (limits.max_release_bytes)",
        )


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
    )


async def _record_fence(q: Queries, ref: EnvRef, fence: Fence) -> None:
    if (fence.epoch, fence.token) != (ref.fence_epoch, ref.fence_token):
        await q.set_fence(ref.id, fence.epoch, fence.token)


class ReleaseService:
    """Publish, roll back and read releases."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

    def _next_version(self, ref: EnvRef, latest: Release | None) -> int:
        """After the latest release, and after anything this replica served: a store restored
        from an older backup must not hand out a version a client already holds."""
        stored = latest.version if latest else ref.version_floor
        return max(stored, self.ctx.published.version(ref.app, ref.name)) + 1

    async def _release(self, principal: Principal, app: str, env: str, plan: _Plan) -> Release:
        """Under the env's publish lock, in one transaction: plan a release, store it with its
        audit entry and the lock's fence; then distribute it to every replica."""
        principal.require(app, Permission.PUBLISH)
        async with self.ctx.coordinator.publish_lock(app, env) as fence:
            now = utc_now()
            try:
                async with self.ctx.store.transaction() as q:
                    ref = await require_env(q, app, env, lock=True)
                    _check_fence(ref, fence)
                    planned = await plan(q, ref, now)
                    release = planned.release
                    await q.insert_release(ref.id, release, planned.items_json)
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
            await self.ctx.coordinator.distribute(release, fence)
        log.info(
            "%s %s/%s version %d by %s", planned.action, app, env, release.version, principal.name
        )
        return release

    async def publish(self, principal: Principal, app: str, env: str, comment: str) -> Release:
        """Make the draft the next release; 409 nothing_to_publish when it equals the latest."""
        comment = validate_comment(comment)

        async def plan(q: Queries, ref: EnvRef, now: str) -> _Planned:
            draft = await q.draft_values(ref.id)
            latest = await q.latest_release(ref.id)
            if latest is not None and latest.items == draft:
                raise AppError(
                    ErrorCode.NOTHING_TO_PUBLISH,
                    f"the draft equals release {latest.version}; change an item first",
                )
            change = diff_items(latest.items if latest else {}, draft, None)
            text = canonical_json(draft)
            _check_size(len(text.encode()), self.ctx.limits.max_release_bytes)
            release = Release(
                app=app,
                env=env,
                version=self._next_version(ref, latest),
                checksum=checksum_of_canonical(text),
                author=principal.name,
                comment=comment,
                created_at=now,
                items=draft,
            )
            summary = (
                f"published version {release.version}: {len(change.added)} added, "
                f"{len(change.changed)} changed, {len(change.removed)} removed"
            )
            return _Planned(release, text, AuditAction.RELEASE_PUBLISH, summary)

        return await self._release(principal, app, env, plan)

    async def rollback(
        self, principal: Principal, app: str, env: str, version: int, comment: str
    ) -> Release:
        """A new release with the items of an earlier one; the draft is reset to them."""
        comment = validate_comment(comment)

        async def plan(q: Queries, ref: EnvRef, now: str) -> _Planned:
            target = await q.release(ref.id, version)
            if target is None:
                raise not_found(f"release {version} of {app}/{env}")
            latest = await q.latest_release(ref.id)
            assert latest is not None
            if latest.items == target.items:
                raise AppError(
                    ErrorCode.NOTHING_TO_PUBLISH,
                    f"release {version} has the same items as the latest release {latest.version}",
                )
            release = Release(
                app=app,
                env=env,
                version=self._next_version(ref, latest),
                checksum=target.checksum,
                author=principal.name,
                comment=comment or f"rollback to version {version}",
                created_at=now,
                items=target.items,
                rollback_of=version,
            )
            # No items limit here: the draft goes back to what was once published. But not past
            # today's max_release_bytes (unless it shrinks): the release would be as large.
            current = await draft_items(q, ref)
            await reconcile_draft(
                q,
                ref,
                current,
                target.items,
                principal.name,
                now,
                self.ctx.limits.max_release_bytes,
            )
            summary = f"rolled back to version {version} as version {release.version}"
            return _Planned(
                release, canonical_json(target.items), AuditAction.RELEASE_ROLLBACK, summary
            )

        return await self._release(principal, app, env, plan)

    async def restore_above(self, app: str, env: str, seen: int) -> Release | None:
        """Store wins: when etcd holds `seen`, higher than the store's latest release (the store
        was restored from an older backup), make that release again above `seen` and
        distribute it, so every replica and client moves up to the store's items. None when
        the env has no release or is already above `seen`."""

        async def plan(q: Queries, ref: EnvRef, now: str) -> _Planned:
            latest = await q.latest_release(ref.id)
            if latest is None or latest.version >= seen:
                raise _AlreadyAbove
            version = max(seen, ref.version_floor, self._next_version(ref, latest) - 1) + 1
            release = restored_release(latest, version, SYSTEM.name, now)
            summary = (
                f"etcd had version {seen}, the store {latest.version}: "
                f"the store's items published again as version {version}"
            )
            return _Planned(
                release, canonical_json(latest.items), AuditAction.RELEASE_RESTORE, summary
            )

        try:
            return await self._release(SYSTEM, app, env, plan)
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
        """One release with its items."""
        principal.require(app, Permission.VIEW)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            release = await q.release(ref.id, version)
        if release is None:
            raise not_found(f"release {version} of {app}/{env}")
        return release

    async def latest_releases(self) -> list[Release]:
        """The newest release of every env, from the store (loading and repair)."""
        async with self.ctx.store.reader() as q:
            return await q.latest_releases()

    async def latest_versions(self) -> dict[tuple[str, str], int]:
        """The newest version of every env, from the store (the refresh's cheap comparison)."""
        async with self.ctx.store.reader() as q:
            return await q.latest_versions()

    async def latest_release(self, app: str, env: str) -> Release | None:
        """The newest release of one env, from the store."""
        async with self.ctx.store.reader() as q:
            ref = await q.env(app, env)
            return await q.latest_release(ref.id) if ref is not None else None
