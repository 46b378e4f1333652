"""Editing an env's draft: items, batches, and the diff against the latest release."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from server.domain.apps import require_env
from server.domain.context import DomainContext
from server.domain.diff import Diff, diff_items
from server.domain.scopes import Principal
from server.domain.validation import validate_comment, validate_key, validate_value
from server.errors import AppError, ErrorCode, not_found
from server.records import AuditAction, Item, utc_now


class DraftService:
    """Reads and writes of draft items; every write is one transaction."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

    async def list_items(self, principal: Principal, app: str, env: str) -> list[Item]:
        """The whole draft of an env."""
        principal.require_write(app)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            return await q.items(ref.id)

    async def get_item(self, principal: Principal, app: str, env: str, key: str) -> Item:
        """One draft item."""
        principal.require_write(app)
        key = validate_key(key)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            item = await q.item(ref.id, key)
        if item is None:
            raise not_found(f"item {key!r}")
        return item

    async def put_item(
        self,
        principal: Principal,
        app: str,
        env: str,
        key: str,
        value: str,
        comment: str | None,
        if_match: int | None,
        create_only: bool = False,
    ) -> tuple[Item, bool]:
        """Create or replace one item; returns (item, created).

        if_match guards the revision; create_only refuses to replace an existing item.
        """
        principal.require_write(app)
        key = validate_key(key)
        value = validate_value(value, self.ctx.limits.max_value_bytes)
        if comment is not None:
            comment = validate_comment(comment)
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            existing = await q.item(ref.id, key)
            if if_match is not None and (existing is None or existing.revision != if_match):
                current = existing.revision if existing else "none"
                raise AppError(
                    ErrorCode.PRECONDITION_FAILED,
                    f"item {key!r} is at revision {current}, not {if_match}; reload and retry",
                )
            if create_only and existing is not None:
                raise AppError(
                    ErrorCode.PRECONDITION_FAILED, f"item {key!r} already exists (If-None-Match: *)"
                )
            if (
                existing is not None
                and existing.value == value
                and comment
                in (
                    None,
                    existing.comment,
                )
            ):
                return existing, False
            if (
                existing is None
                and await q.count_items(ref.id) >= self.ctx.limits.max_items_per_env
            ):
                raise _too_many(self.ctx.limits.max_items_per_env)
            revision = ref.draft_revision + 1
            item = Item(
                key,
                value,
                comment if comment is not None else (existing.comment if existing else ""),
                revision,
                now,
                principal.name,
            )
            await q.set_draft_revision(ref.id, revision)
            if existing is None:
                await q.insert_items(ref.id, [item])
            else:
                await q.update_items(ref.id, [item])
            await q.add_audit(
                now,
                principal.name,
                AuditAction.ITEM_CREATE if existing is None else AuditAction.ITEM_UPDATE,
                f"{app}/{env}/{key}",
                f"{'created' if existing is None else 'changed'} {key} "
                f"({len(value.encode())} bytes)",
                app,
                env,
            )
        return item, existing is None

    async def delete_item(
        self, principal: Principal, app: str, env: str, key: str, if_match: int | None
    ) -> None:
        """Remove one item from the draft."""
        principal.require_write(app)
        key = validate_key(key)
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            existing = await q.item(ref.id, key)
            if existing is None:
                raise not_found(f"item {key!r}")
            if if_match is not None and existing.revision != if_match:
                raise AppError(
                    ErrorCode.PRECONDITION_FAILED,
                    f"item {key!r} is at revision {existing.revision}, not {if_match}",
                )
            await q.set_draft_revision(ref.id, ref.draft_revision + 1)
            await q.delete_items(ref.id, [key])
            await q.add_audit(
                now,
                principal.name,
                AuditAction.ITEM_DELETE,
                f"{app}/{env}/{key}",
                f"deleted {key}",
                app,
                env,
            )

    async def patch_items(
        self,
        principal: Principal,
        app: str,
        env: str,
        to_set: Mapping[str, str],
        to_delete: Sequence[str],
    ) -> list[Item]:
        """Many edits in one transaction: all of them or none; returns the new draft."""
        principal.require_write(app)
        limits = self.ctx.limits
        values = {
            validate_key(k): validate_value(v, limits.max_value_bytes) for k, v in to_set.items()
        }
        deletes = [validate_key(k) for k in to_delete]
        if len(set(deletes)) != len(deletes):
            raise AppError(ErrorCode.INVALID_REQUEST, "a key is listed twice in delete")
        both = sorted(set(values) & set(deletes))
        if both:
            raise AppError(
                ErrorCode.INVALID_REQUEST, f"keys both set and deleted: {', '.join(both)}"
            )
        if not values and not deletes:
            raise AppError(ErrorCode.INVALID_REQUEST, "nothing to change: give set and/or delete")
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            current = {item.key: item for item in await q.items(ref.id)}
            missing = [k for k in deletes if k not in current]
            if missing:
                raise not_found(f"items {', '.join(repr(k) for k in missing[:10])}")
            size_after = len(current) + len([k for k in values if k not in current]) - len(deletes)
            if size_after > limits.max_items_per_env:
                raise _too_many(limits.max_items_per_env)
            revision = ref.draft_revision + 1
            changed = {k: v for k, v in values.items() if k not in current or current[k].value != v}
            new = [
                Item(k, v, "", revision, now, principal.name)
                for k, v in changed.items()
                if k not in current
            ]
            updated = [
                Item(k, v, current[k].comment, revision, now, principal.name)
                for k, v in changed.items()
                if k in current
            ]
            if new or updated or deletes:
                await q.set_draft_revision(ref.id, revision)
                await q.insert_items(ref.id, new)
                await q.update_items(ref.id, updated)
                await q.delete_items(ref.id, deletes)
                await q.add_audit(
                    now,
                    principal.name,
                    AuditAction.ITEMS_PATCH,
                    f"{app}/{env}",
                    f"{len(new)} added, {len(updated)} changed, {len(deletes)} deleted",
                    app,
                    env,
                )
            return await q.items(ref.id)

    async def diff(self, principal: Principal, app: str, env: str) -> Diff:
        """The draft against the latest release."""
        principal.require_write(app)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            draft = await q.draft_values(ref.id)
            latest = await q.latest_release(ref.id)
        base = latest.items if latest else {}
        return diff_items(base, draft, latest.version if latest else None)


def _too_many(limit: int) -> AppError:
    return AppError(ErrorCode.TOO_MANY_ITEMS, f"an env holds at most {limit} items")
