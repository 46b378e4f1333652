"""Editing an env's draft: items, batches, and the diff against the latest release.

Every write to a draft goes through `write_change`: one new draft revision for all of a
change's items, nothing at all for an empty change. A batch (PATCH) and a rollback both say
what the draft should hold and let `reconcile_draft` work out the change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from server.domain.apps import require_env
from server.domain.canonical import document_bytes, entry_bytes, rare_escape_surplus
from server.domain.context import DomainContext
from server.domain.diff import Diff, diff_items
from server.domain.scopes import Permission, Principal
from server.domain.secrets import (
    may_see,
    opened_item,
    opened_items,
    opened_release,
    sealed_item,
)
from server.domain.validation import validate_comment, validate_key, validate_value
from server.errors import AppError, ErrorCode, not_found
from server.records import AuditAction, EnvRef, Item, utc_now
from server.secretbox import Keyring
from server.store.queries import Queries


@dataclass(frozen=True)
class DraftChange:
    """The writes that take a draft to its next revision: items added, updated, keys deleted."""

    revision: int
    added: tuple[Item, ...] = ()
    updated: tuple[Item, ...] = ()
    deleted: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    @property
    def keys(self) -> list[str]:
        """Every key the change writes or deletes, sorted."""
        return sorted([i.key for i in self.added] + [i.key for i in self.updated] + [*self.deleted])

    @property
    def summary(self) -> str:
        """The counts, as the audit log shows them."""
        return f"{len(self.added)} added, {len(self.updated)} changed, {len(self.deleted)} deleted"


@dataclass(frozen=True)
class Precondition:
    """What an item write expects: the item at a revision, or no item (If-None-Match: *)."""

    revision: int | None = None
    absent: bool = False

    def check(self, key: str, existing: Item | None) -> None:
        """Refuse the write (412) when the item is not as expected."""
        if self.revision is not None and (existing is None or existing.revision != self.revision):
            current = existing.revision if existing else "none"
            raise AppError(
                ErrorCode.PRECONDITION_FAILED,
                f"item {key!r} is at revision {current}, not {self.revision}; reload and retry",
            )
        if self.absent and existing is not None:
            raise AppError(
                ErrorCode.PRECONDITION_FAILED, f"item {key!r} already exists (If-None-Match: *)"
            )


NO_PRECONDITION = Precondition()


@dataclass(frozen=True)
class Edits:
    """What a batch says beside values: secret flags and comments set, keys always written.

    A key without a flag keeps its own (a new one is not secret); without a comment likewise.
    `force` are written even when unchanged: a writer who may not read a secret must not learn
    from an unchanged revision that it guessed the value.
    """

    secrets: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    comments: Mapping[str, str] = dataclasses.field(default_factory=dict)
    force: Collection[str] = ()


NO_EDITS = Edits()


def plan_reconcile(
    current: Mapping[str, Item],
    target: Mapping[str, str],
    revision: int,
    now: str,
    actor: str,
    edits: Edits = NO_EDITS,
) -> DraftChange:
    """The change that makes the draft's (clear) values equal target, in clear.

    A new key gets an empty comment, a changed one keeps its comment, and an unchanged one is
    not written at all (it keeps its revision, author and time).
    """
    added: list[Item] = []
    updated: list[Item] = []
    for key, value in target.items():
        old = current.get(key)
        secret = edits.secrets.get(key, old.secret if old else False)
        comment = edits.comments.get(key, old.comment if old else "")
        new = Item(key, value, comment, revision, now, actor, secret)
        if old is None:
            added.append(new)
        elif key in edits.force or (old.value, old.secret, old.comment) != (value, secret, comment):
            updated.append(new)
    deleted = tuple(k for k in current if k not in target)
    return DraftChange(revision, tuple(added), tuple(updated), deleted)


def sealed_change(keyring: Keyring, app: str, env: str, change: DraftChange) -> DraftChange:
    """A change in clear as the store keeps it: every secret value sealed."""
    return dataclasses.replace(
        change,
        added=tuple(sealed_item(keyring, app, env, i) for i in change.added),
        updated=tuple(sealed_item(keyring, app, env, i) for i in change.updated),
    )


def check_items_limit(before: int, after: int, limit: int) -> None:
    """Refuse a write that grows a draft past the limit (413 too_many_items).

    A draft already past a since-lowered limit may still change and shrink.
    """
    if after > limit and after > before:
        raise AppError(ErrorCode.TOO_MANY_ITEMS, f"an env holds at most {limit} items")


async def draft_entries(q: Queries, ref: EnvRef) -> tuple[int, int]:
    """The draft's item count and the sum of their canonical.entry_bytes, from the store."""
    count, entries, rare = await q.draft_size(ref.id)
    return count, entries + sum(rare_escape_surplus(value) for value in rare)


async def release_bytes(q: Queries, ref: EnvRef) -> int:
    """The draft's size as a release (its canonical JSON in UTF-8), without loading it."""
    return document_bytes(*await draft_entries(q, ref))


async def check_draft_bytes(
    q: Queries, ref: EnvRef, change: DraftChange, replaced: Iterable[Item], limit: int
) -> None:
    """Refuse a change that grows the draft past limit bytes as a release (413 draft_too_large).

    replaced are the draft's items the change updates or deletes. Exact, without serialising the
    draft: the store sums the escaped sizes, and the change's own items are measured here. A
    change that does not grow the draft needs no query, and a draft already past a since-lowered
    limit may still shrink.
    """
    growth = sum(entry_bytes(i.key, i.value) for i in (*change.added, *change.updated)) - sum(
        entry_bytes(i.key, i.value) for i in replaced
    )
    if growth <= 0:
        return
    count, entries = await draft_entries(q, ref)
    before = document_bytes(count, entries)
    after = document_bytes(count + len(change.added) - len(change.deleted), entries + growth)
    if after > limit and after > before:
        raise AppError(
            ErrorCode.DRAFT_TOO_LARGE,
            f"the draft would be {after} bytes as a release; at most {limit} "
            "(limits.max_release_bytes)",
        )


async def write_change(q: Queries, ref: EnvRef, change: DraftChange) -> None:
    """Store a change under its draft revision, in the caller's transaction."""
    if not change:
        return
    await q.set_draft_revision(ref.id, change.revision)
    if change.added:
        await q.insert_items(ref.id, change.added)
    if change.updated:
        await q.update_items(ref.id, change.updated)
    if change.deleted:
        await q.delete_items(ref.id, change.deleted)


async def reconcile_draft(
    q: Queries,
    ref: EnvRef,
    keyring: Keyring,
    stored: Mapping[str, Item],
    target: Mapping[str, str],
    actor: str,
    now: str,
    max_bytes: int,
    max_items: int | None = None,
    edits: Edits = NO_EDITS,
) -> DraftChange:
    """Make the draft (stored, read in this transaction) hold exactly target's clear values.

    Used by a batch edit and by a rollback; max_bytes (as a release) and max_items refuse a
    draft that would grow past them. Returns what was written, in clear (empty when the draft
    matched).
    """
    change, sealed = await plan_checked(
        q, ref, keyring, stored, target, actor, now, max_bytes, max_items, edits
    )
    await write_change(q, ref, sealed)
    return change


async def plan_checked(
    q: Queries,
    ref: EnvRef,
    keyring: Keyring,
    stored: Mapping[str, Item],
    target: Mapping[str, str],
    actor: str,
    now: str,
    max_bytes: int,
    max_items: int | None = None,
    edits: Edits = NO_EDITS,
) -> tuple[DraftChange, DraftChange]:
    """What reconcile_draft would write, its limits checked, nothing written (a dry run):
    the change in clear and the same change sealed, as write_change stores it."""
    if max_items is not None:
        check_items_limit(len(stored), len(target), max_items)
    current = {k: opened_item(keyring, ref.app, ref.name, i) for k, i in stored.items()}
    change = plan_reconcile(current, target, ref.draft_revision + 1, now, actor, edits)
    sealed = sealed_change(keyring, ref.app, ref.name, change)
    replaced = [stored[i.key] for i in change.updated] + [stored[k] for k in change.deleted]
    await check_draft_bytes(q, ref, sealed, replaced, max_bytes)
    return change, sealed


async def draft_items(q: Queries, ref: EnvRef) -> dict[str, Item]:
    """The draft by key."""
    return {item.key: item for item in await q.items(ref.id)}


class DraftService:
    """Reads and writes of draft items; every write is one transaction."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

    async def list_items(self, principal: Principal, app: str, env: str) -> tuple[int, list[Item]]:
        """The whole draft of an env and its revision; secret values in clear only for those
        who may see them (the others' stay sealed, Item.to_json(reveal=False) shows null)."""
        principal.require(app, Permission.VIEW)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            items = await q.items(ref.id)
        return ref.draft_revision, self._shown(principal, app, env, items)

    def _shown(self, principal: Principal, app: str, env: str, items: list[Item]) -> list[Item]:
        if not may_see(principal, app):
            return items
        return opened_items(self.ctx.keyring, app, env, items)

    async def get_item(self, principal: Principal, app: str, env: str, key: str) -> Item:
        """One draft item."""
        principal.require(app, Permission.VIEW)
        key = validate_key(key)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            item = await q.item(ref.id, key)
        if item is None:
            raise not_found(f"item {key!r}")
        return self._shown(principal, app, env, [item])[0]

    async def put_item(
        self,
        principal: Principal,
        app: str,
        env: str,
        key: str,
        value: str,
        comment: str | None,
        precondition: Precondition = NO_PRECONDITION,
        secret: bool | None = None,
    ) -> tuple[Item, bool]:
        """Create or replace one item (a comment or secret flag of None keeps the old one);
        (item, created). The item's value is sealed when it is a secret the principal may not
        see: an editor writes a secret without reading it back."""
        principal.require(app, Permission.EDIT)
        key, value, comment = self._valid_item(key, value, comment)
        keyring = self.ctx.keyring
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            stored = await q.item(ref.id, key)
            precondition.check(key, stored)
            existing = opened_item(keyring, app, env, stored) if stored is not None else None
            blind = not may_see(principal, app)
            if secret is None:
                secret = existing.secret if existing is not None else False
            if (
                existing is not None
                and stored is not None
                and _unchanged(existing, value, comment, secret)
                and not (blind and secret)
            ):
                # A retried write changes nothing (for a reader of the value: a blind writer
                # would learn from it that the value it sent was the secret).
                return self._shown(principal, app, env, [stored])[0], False
            if existing is None:
                size = await q.count_items(ref.id)
                check_items_limit(size, size + 1, self.ctx.limits.max_items_per_env)
            item = _next_item(
                existing, key, value, comment, secret, ref.draft_revision + 1, now, principal
            )
            sealed = sealed_item(keyring, app, env, item)
            change = _item_change(existing, sealed)
            replaced = [stored] if stored is not None else []
            await check_draft_bytes(q, ref, change, replaced, self.ctx.limits.max_release_bytes)
            await write_change(q, ref, change)
            await _audit_put(
                q, item, created=existing is None, app=app, env=env, actor=principal.actor
            )
        return (sealed if blind else item), existing is None

    async def delete_item(
        self,
        principal: Principal,
        app: str,
        env: str,
        key: str,
        precondition: Precondition = NO_PRECONDITION,
    ) -> None:
        """Remove one item from the draft."""
        principal.require(app, Permission.EDIT)
        key = validate_key(key)
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            existing = await q.item(ref.id, key)
            if existing is None:
                raise not_found(f"item {key!r}")
            precondition.check(key, existing)
            await write_change(q, ref, DraftChange(ref.draft_revision + 1, deleted=(key,)))
            await q.add_audit(
                now,
                principal.actor,
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
        edits: Edits = NO_EDITS,
    ) -> tuple[int, list[str]]:
        """Many edits in one transaction, all of them or none: (draft revision, keys changed).

        Not the new draft: answering a batch of one key with the whole draft made every edit
        cost as much as the draft."""
        principal.require(app, Permission.EDIT)
        values, deletes = self._valid_batch(to_set, to_delete)
        comments = {k: validate_comment(c) for k, c in edits.comments.items()}
        keyring = self.ctx.keyring
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            stored = await draft_items(q, ref)
            missing = [k for k in deletes if k not in stored]
            if missing:
                raise not_found(f"items {', '.join(repr(k) for k in missing[:10])}")
            kept = {k: i for k, i in stored.items() if k not in deletes and k not in values}
            target = {k: v.value for k, v in opened_items_by_key(keyring, app, env, kept).items()}
            target |= values
            blind = not may_see(principal, app)
            force = [k for k in values if blind and edits.secrets.get(k, _secret(stored, k))]
            limits = self.ctx.limits
            change = await reconcile_draft(
                q,
                ref,
                keyring,
                stored,
                target,
                principal.name,
                now,
                limits.max_release_bytes,
                limits.max_items_per_env,
                Edits(edits.secrets, comments, force),
            )
            if change:
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.ITEMS_PATCH,
                    f"{app}/{env}",
                    change.summary,
                    app,
                    env,
                )
        return (change.revision, change.keys) if change else (ref.draft_revision, [])

    async def diff(self, principal: Principal, app: str, env: str) -> Diff:
        """The draft against the latest release."""
        principal.require(app, Permission.VIEW)
        keyring = self.ctx.keyring
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            stored = await q.items(ref.id)
            latest = await q.latest_release(ref.id)
        draft = {i.key: i.value for i in opened_items(keyring, app, env, stored)}
        base = opened_release(keyring, latest).items if latest else {}
        diff = dataclasses.replace(
            diff_items(base, draft, latest.version if latest else None),
            draft_revision=ref.draft_revision,
        )
        secrets = {i.key for i in stored if i.secret} | (latest.secret_keys if latest else set())
        diff = diff.with_secrets(secrets)
        return diff if may_see(principal, app) else diff.masked(secrets)

    async def discard(self, principal: Principal, app: str, env: str) -> tuple[int, list[Item]]:
        """The draft back to the latest release's values (empty before the first release).

        Releases keep values only: a key the release and the draft share keeps its comment, a
        key brought back gets none. Returns (draft revision, the draft).
        """
        principal.require(app, Permission.EDIT)
        keyring = self.ctx.keyring
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            latest = await q.latest_release(ref.id)
            stored = await draft_items(q, ref)
            base = opened_release(keyring, latest) if latest else None
            target = base.items if base else {}
            # A key brought back is as secret as it was published (and one kept, likewise).
            flags = {k: k in base.secret_keys for k in target} if base else {}
            # No items limit: the draft goes back to what was published (as a rollback does).
            change = await reconcile_draft(
                q,
                ref,
                keyring,
                stored,
                target,
                principal.name,
                now,
                self.ctx.limits.max_release_bytes,
                edits=Edits(secrets=flags),
            )
            if change:
                back_to = f"version {latest.version}" if latest else "empty (never published)"
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.DRAFT_DISCARD,
                    f"{app}/{env}",
                    f"draft back to {back_to}: {change.summary}",
                    app,
                    env,
                )
            items = await q.items(ref.id)
        return (change.revision if change else ref.draft_revision), self._shown(
            principal, app, env, items
        )

    def _valid_item(self, key: str, value: str, comment: str | None) -> tuple[str, str, str | None]:
        """One item's key, value and comment, validated (400/413 before any store work)."""
        key = validate_key(key)
        value = validate_value(value, self.ctx.limits.max_value_bytes)
        return key, value, validate_comment(comment) if comment is not None else None

    def _valid_batch(
        self, to_set: Mapping[str, str], to_delete: Sequence[str]
    ) -> tuple[dict[str, str], set[str]]:
        """A batch's values and deletions, validated: no key twice, something to do."""
        limit = self.ctx.limits.max_value_bytes
        values = {validate_key(k): validate_value(v, limit) for k, v in to_set.items()}
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
        return values, set(deletes)


def _unchanged(existing: Item, value: str, comment: str | None, secret: bool) -> bool:
    """Whether a put would leave the item as it is (no comment given keeps the old one)."""
    return (
        existing.value == value
        and comment in (None, existing.comment)
        and existing.secret == secret
    )


def _secret(items: Mapping[str, Item], key: str) -> bool:
    item = items.get(key)
    return item.secret if item is not None else False


def opened_items_by_key(
    keyring: Keyring, app: str, env: str, items: Mapping[str, Item]
) -> dict[str, Item]:
    """Stored items by key with their values in clear."""
    return {k: opened_item(keyring, app, env, i) for k, i in items.items()}


def _next_item(
    existing: Item | None,
    key: str,
    value: str,
    comment: str | None,
    secret: bool,
    revision: int,
    now: str,
    principal: Principal,
) -> Item:
    """The item a put writes; no comment keeps the existing one (or none for a new item)."""
    if comment is None:
        comment = existing.comment if existing else ""
    return Item(key, value, comment, revision, now, principal.name, secret)


def _item_change(existing: Item | None, item: Item) -> DraftChange:
    if existing is None:
        return DraftChange(item.revision, added=(item,))
    return DraftChange(item.revision, updated=(item,))


async def _audit_put(
    q: Queries, item: Item, *, created: bool, app: str, env: str, actor: str
) -> None:
    # Not even a secret's size: the audit says only that it was written.
    what = "secret" if item.secret else f"{len(item.value.encode())} bytes"
    await q.add_audit(
        item.updated_at,
        actor,
        AuditAction.ITEM_CREATE if created else AuditAction.ITEM_UPDATE,
        f"{app}/{env}/{item.key}",
        f"{'created' if created else 'changed'} {item.key} ({what})",
        app,
        env,
    )
