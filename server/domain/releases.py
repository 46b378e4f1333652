"""Publishing the draft as an immutable release, rollback, and release history."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.domain.apps import require_env
from server.domain.context import DomainContext
from server.domain.diff import diff_items
from server.domain.drafts import Edits, draft_items, reconcile_draft
from server.domain.scopes import Permission, Principal
from server.domain.secrets import may_see, opened_items, opened_release, snapshot
from server.domain.validation import validate_comment
from server.errors import AppError, ErrorCode, not_found
from server.records import AuditAction, EnvRef, Fence, Release, utc_now
from server.store.db import IntegrityError
from server.store.queries import Queries

log = logging.getLogger(__name__)

MAX_PAGE = 500


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


async def _record_fence(q: Queries, ref: EnvRef, fence: Fence) -> None:
    if (fence.epoch, fence.token) != (ref.fence_epoch, ref.fence_token):
        await q.set_fence(ref.id, fence.epoch, fence.token)


class ReleaseService:
    """Publish, roll back and read releases."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

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
                        principal.name,
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
            "%s %s/%s version %d by %s", planned.action, app, env, release.version, principal.name
        )
        return opened_release(self.ctx.keyring, release)

    async def publish(self, principal: Principal, app: str, env: str, comment: str) -> Release:
        """Make the draft the next release; 409 nothing_to_publish when it equals the latest."""
        comment = validate_comment(comment)

        keyring = self.ctx.keyring

        async def plan(q: Queries, ref: EnvRef, now: str) -> _Planned:
            stored = await q.items(ref.id)
            draft = {i.key: i.value for i in opened_items(keyring, app, env, stored)}
            secrets = frozenset(i.key for i in stored if i.secret)
            latest = await q.latest_release(ref.id)
            base = opened_release(keyring, latest) if latest is not None else None
            if (
                latest is not None
                and base is not None
                and (base.items, base.secret_keys)
                == (
                    draft,
                    secrets,
                )
            ):
                raise AppError(
                    ErrorCode.NOTHING_TO_PUBLISH,
                    f"the draft equals release {latest.version}; change an item first",
                )
            change = diff_items(base.items if base else {}, draft, None)
            snap = snapshot(keyring, app, env, draft, secrets)
            _check_size(len(snap.text.encode()), self.ctx.limits.max_release_bytes)
            release = Release(
                app=app,
                env=env,
                version=(latest.version if latest else ref.version_floor) + 1,
                checksum=snap.checksum,
                author=principal.name,
                comment=comment,
                created_at=now,
                items=snap.items,
                secret_keys=snap.secret_keys,
            )
            summary = (
                f"published version {release.version}: {len(change.added)} added, "
                f"{len(change.changed)} changed, {len(change.removed)} removed"
            )
            return _Planned(release, snap.text, AuditAction.RELEASE_PUBLISH, summary)

        return await self._release(principal, app, env, plan)

    async def rollback(
        self, principal: Principal, app: str, env: str, version: int, comment: str
    ) -> Release:
        """A new release with the items of an earlier one; the draft is reset to them."""
        comment = validate_comment(comment)
        keyring = self.ctx.keyring

        async def plan(q: Queries, ref: EnvRef, now: str) -> _Planned:
            stored_target = await q.release(ref.id, version)
            if stored_target is None:
                raise not_found(f"release {version} of {app}/{env}")
            target = opened_release(keyring, stored_target)
            stored_latest = await q.latest_release(ref.id)
            assert stored_latest is not None
            latest = opened_release(keyring, stored_latest)
            if (latest.items, latest.secret_keys) == (target.items, target.secret_keys):
                raise AppError(
                    ErrorCode.NOTHING_TO_PUBLISH,
                    f"release {version} has the same items as the latest release {latest.version}",
                )
            snap = snapshot(keyring, app, env, target.items, target.secret_keys)
            release = Release(
                app=app,
                env=env,
                version=latest.version + 1,
                checksum=snap.checksum,
                author=principal.name,
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
                principal.name,
                now,
                self.ctx.limits.max_release_bytes,
                edits=Edits(secrets=secret_flags),
            )
            summary = f"rolled back to version {version} as version {release.version}"
            return _Planned(release, snap.text, AuditAction.RELEASE_ROLLBACK, summary)

        return await self._release(principal, app, env, plan)

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

    async def latest_versions(self) -> dict[tuple[str, str], int]:
        """The newest version of every env, from the store (the refresh's cheap comparison)."""
        async with self.ctx.store.reader() as q:
            return await q.latest_versions()

    async def latest_release(self, app: str, env: str) -> Release | None:
        """The newest release of one env, sealed, from the store."""
        async with self.ctx.store.reader() as q:
            ref = await q.env(app, env)
            return await q.latest_release(ref.id) if ref is not None else None
