"""Export an app as a document, import one back, and import a file into one env's draft.

Every import is all or none: the whole input is parsed and checked, then every limit (items per
env, value size, the draft's size as a release) is checked against the store, and only then is
anything written, in one transaction with its audit entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.domain.apps import DEFAULT_ENV, MAX_ENVS_PER_APP, require_env
from server.domain.canonical import document_bytes, entry_bytes
from server.domain.context import DomainContext
from server.domain.drafts import (
    DraftChange,
    Edits,
    check_draft_bytes,
    check_items_limit,
    draft_items,
    opened_items_by_key,
    plan_checked,
    sealed_change,
    write_change,
)
from server.domain.parsing import check_entry, parse_file
from server.domain.scopes import Permission, Principal
from server.domain.secrets import may_see, opened_item
from server.domain.validation import (
    validate_app_name,
    validate_comment,
    validate_description,
    validate_env_name,
)
from server.errors import AppError, ErrorCode, not_found
from server.records import AuditAction, EnvRef, Item, utc_now
from server.store.db import IntegrityError
from server.store.queries import Queries

EXPORT_KIND = "configcenter.export"
EXPORT_VERSION = 1
IMPORT_MODES = ("merge", "replace")
APP_IMPORT_MODES = ("create", "merge")


@dataclass(frozen=True)
class DocumentItem:
    """One item of an export document."""

    key: str
    # None: a secret exported without its value, which keeps the value the item has.
    value: str | None
    comment: str = ""
    secret: bool = False


@dataclass(frozen=True)
class Document:
    """An export document, checked: what an app import writes."""

    app: str
    description: str
    envs: Mapping[str, tuple[DocumentItem, ...]]


@dataclass(frozen=True)
class Outcome:
    """What an import did (or, on a dry run, would do) to one env's draft: keys, sorted."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @classmethod
    def of(cls, change: DraftChange) -> Outcome:
        """The keys a draft change adds, changes and removes."""
        return cls(
            tuple(sorted(i.key for i in change.added)),
            tuple(sorted(i.key for i in change.updated)),
            tuple(sorted(change.deleted)),
        )

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
        }

    @property
    def summary(self) -> str:
        """The counts, as the audit log shows them."""
        return f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed"


def _doc_error(where: str, problem: str) -> AppError:
    return AppError(ErrorCode.INVALID_IMPORT, f"{where}: {problem}; nothing was imported")


def check_document(raw: Mapping[str, Any], max_value_bytes: int) -> Document:
    """An export document's content checked (its shape was checked by the caller's schema)."""
    if raw.get("kind") != EXPORT_KIND or raw.get("version") != EXPORT_VERSION:
        raise _doc_error(
            "the document", f"not a {EXPORT_KIND} document of version {EXPORT_VERSION}"
        )
    try:
        app = validate_app_name(raw["app"])
        description = validate_description(raw.get("description", ""))
    except AppError as exc:
        raise _doc_error("the document", exc.message) from None
    envs: dict[str, tuple[DocumentItem, ...]] = {}
    for env, body in raw["envs"].items():
        try:
            env = validate_env_name(env)
        except AppError as exc:
            raise _doc_error(f"envs.{env!s:.40}", exc.message) from None
        envs[env] = _document_items(env, body["items"], max_value_bytes)
    if len(envs) > MAX_ENVS_PER_APP:
        raise AppError(ErrorCode.LIMIT_EXCEEDED, f"at most {MAX_ENVS_PER_APP} envs per app")
    return Document(app, description, envs)


def _document_items(
    env: str, items: list[Mapping[str, Any]], max_value_bytes: int
) -> tuple[DocumentItem, ...]:
    seen: set[str] = set()
    checked = []
    for index, item in enumerate(items):
        where = f"envs.{env}.items[{index}]"
        value: str | None
        if item.get("value") is None and item.get("secret"):
            # Checked against the draft when planned: only an existing secret keeps its value.
            key, _ = check_entry(item["key"], "", where, max_value_bytes)
            value = None
        else:
            key, value = check_entry(item["key"], item.get("value"), where, max_value_bytes)
        if key in seen:
            raise _doc_error(where, f"key {key} is listed twice")
        seen.add(key)
        try:
            comment = validate_comment(item.get("comment", ""))
        except AppError as exc:
            raise _doc_error(where, exc.message) from None
        checked.append(DocumentItem(key, value, comment, bool(item.get("secret"))))
    return tuple(checked)


def _plan_items(
    env: str,
    current: Mapping[str, Item],
    items: tuple[DocumentItem, ...],
    revision: int,
    now: str,
    actor: str,
) -> DraftChange:
    """The change, in clear, that sets a document's items (value, comment and secret flag)
    into a draft (current: its items in clear); no deletes. A secret without its value keeps
    the value of the draft's secret of that key; there must be one (400 invalid_import)."""
    added, updated = [], []
    for doc in items:
        existing = current.get(doc.key)
        value = doc.value
        if value is None:
            if existing is None or not existing.secret:
                raise _doc_error(
                    f"envs.{env}.items {doc.key}",
                    "a secret without its value is imported only over an existing secret "
                    "(export with secrets=include)",
                )
            value = existing.value
        item = Item(doc.key, value, doc.comment, revision, now, actor, doc.secret)
        if existing is None:
            added.append(item)
        elif (existing.value, existing.comment, existing.secret) != (
            value,
            doc.comment,
            doc.secret,
        ):
            updated.append(item)
    return DraftChange(revision, tuple(added), tuple(updated))


class TransferService:
    """Export and import of apps, and file imports into a draft."""

    def __init__(self, ctx: DomainContext) -> None:
        self.ctx = ctx

    async def export_app(
        self, principal: Principal, app: str, include_secrets: bool
    ) -> dict[str, Any]:
        """The app with every env's draft; secret values only with include_secrets (admin)."""
        principal.require(app, Permission.MANAGE)
        if include_secrets:
            principal.require_admin()
        async with self.ctx.store.reader() as q:
            found = await q.get_app(app)
            if found is None:
                raise not_found(f"app {app!r}")
            envs: dict[str, Any] = {}
            for env in found.envs:
                ref = await require_env(q, app, env)
                items = [self._export_item(ref, i, include_secrets) for i in await q.items(ref.id)]
                envs[env] = {"items": items}
        return {
            "kind": EXPORT_KIND,
            "version": EXPORT_VERSION,
            "exported_at": utc_now(),
            "app": found.name,
            "description": found.description,
            "envs": envs,
        }

    def _export_item(self, ref: EnvRef, item: Item, include_secrets: bool) -> dict[str, Any]:
        if item.secret:
            shown = (
                opened_item(self.ctx.keyring, ref.app, ref.name, item) if include_secrets else None
            )
            value = shown.value if shown is not None else None
        else:
            value = item.value
        return {"key": item.key, "value": value, "comment": item.comment, "secret": item.secret}

    async def import_app(
        self, principal: Principal, raw: Mapping[str, Any], mode: str
    ) -> tuple[str, dict[str, Outcome]]:
        """Create an app from an export document, or merge one into an existing app.

        merge sets the listed items (value and comment) into the drafts of the listed envs,
        creating the envs missing; it deletes nothing and leaves the description as it is.
        """
        principal.require_admin()
        if mode not in APP_IMPORT_MODES:
            raise AppError(
                ErrorCode.INVALID_REQUEST, f"mode must be create or merge, not {mode!r:.40}"
            )
        doc = check_document(raw, self.ctx.limits.max_value_bytes)
        now = utc_now()
        try:
            async with self.ctx.store.transaction() as q:
                if mode == "create":
                    outcomes = await self._create_from(q, doc, now, principal.name)
                else:
                    outcomes = await self._merge_into(q, doc, now, principal.name)
                total = Outcome(
                    tuple(k for o in outcomes.values() for k in o.added),
                    tuple(k for o in outcomes.values() for k in o.changed),
                )
                await q.add_audit(
                    now,
                    principal.actor,
                    AuditAction.APP_IMPORT,
                    doc.app,
                    f"{mode} from an export document: {len(outcomes)} envs, {total.summary}",
                    app=doc.app,
                )
        except IntegrityError:
            raise AppError(ErrorCode.EXISTS, f"app {doc.app!r} already exists") from None
        return doc.app, outcomes

    def _check_new_env(self, app: str, env: str, items: tuple[DocumentItem, ...]) -> None:
        limits = self.ctx.limits
        check_items_limit(0, len(items), limits.max_items_per_env)
        # Measured as stored: secret values sealed.
        change = self._sealed(app, env, _plan_items(env, {}, items, 1, "", ""))
        size = document_bytes(len(items), sum(entry_bytes(i.key, i.value) for i in change.added))
        if size > limits.max_release_bytes:
            raise AppError(
                ErrorCode.DRAFT_TOO_LARGE,
                f"a draft would be {size} bytes as a release; at most {limits.max_release_bytes} "
                "(limits.max_release_bytes)",
            )

    async def _create_from(
        self, q: Queries, doc: Document, now: str, actor: str
    ) -> dict[str, Outcome]:
        envs = dict(doc.envs) or {DEFAULT_ENV: ()}
        for env, items in envs.items():
            self._check_new_env(doc.app, env, items)
        if await q.app_id(doc.app) is not None:
            raise AppError(ErrorCode.EXISTS, f"app {doc.app!r} already exists")
        app_id = await q.insert_app(doc.app, doc.description, now, actor)
        outcomes = {}
        for env, items in envs.items():
            outcomes[env] = await self._write_new_env(q, app_id, doc.app, env, items, now, actor)
        return outcomes

    async def _write_new_env(
        self,
        q: Queries,
        app_id: int,
        app: str,
        env: str,
        items: tuple[DocumentItem, ...],
        now: str,
        actor: str,
    ) -> Outcome:
        """A new env holding items (checked already by _check_new_env) as its first revision."""
        await q.insert_env(app_id, env, now)
        ref = await q.env(app, env)
        assert ref is not None
        change = _plan_items(env, {}, items, ref.draft_revision + 1, now, actor)
        await write_change(q, ref, self._sealed(app, env, change))
        return Outcome.of(change)

    def _sealed(self, app: str, env: str, change: DraftChange) -> DraftChange:
        return sealed_change(self.ctx.keyring, app, env, change)

    async def _merge_into(
        self, q: Queries, doc: Document, now: str, actor: str
    ) -> dict[str, Outcome]:
        limits = self.ctx.limits
        app_id = await q.app_id(doc.app, lock=True)
        if app_id is None:
            raise not_found(f"app {doc.app!r}")
        current_app = await q.get_app(doc.app)
        assert current_app is not None
        new_envs = [env for env in doc.envs if env not in current_app.envs]
        if len(current_app.envs) + len(new_envs) > MAX_ENVS_PER_APP:
            raise AppError(ErrorCode.LIMIT_EXCEEDED, f"at most {MAX_ENVS_PER_APP} envs per app")
        # Every env planned and checked before the first write.
        planned: list[tuple[EnvRef, DraftChange, DraftChange]] = []
        for env, items in doc.envs.items():
            if env in new_envs:
                self._check_new_env(doc.app, env, items)
                continue
            ref = await require_env(q, doc.app, env, lock=True)
            stored = await draft_items(q, ref)
            current = opened_items_by_key(self.ctx.keyring, doc.app, env, stored)
            change = _plan_items(env, current, items, ref.draft_revision + 1, now, actor)
            check_items_limit(
                len(current), len(current) + len(change.added), limits.max_items_per_env
            )
            sealed = self._sealed(doc.app, env, change)
            replaced = [stored[i.key] for i in change.updated]
            await check_draft_bytes(q, ref, sealed, replaced, limits.max_release_bytes)
            planned.append((ref, change, sealed))
        outcomes = {}
        for ref, change, sealed in planned:
            await write_change(q, ref, sealed)
            outcomes[ref.name] = Outcome.of(change)
        for env in new_envs:
            outcomes[env] = await self._write_new_env(
                q, app_id, doc.app, env, doc.envs[env], now, actor
            )
        return {env: outcomes[env] for env in doc.envs}

    async def import_env(
        self,
        principal: Principal,
        app: str,
        env: str,
        fmt: str,
        data: bytes,
        mode: str = "merge",
        dry_run: bool = False,
    ) -> tuple[int, Outcome]:
        """A file into one env's draft: merge sets its keys, replace makes the draft exactly it.

        Returns (draft revision, outcome); a dry run checks everything and writes nothing (the
        revision is then the draft's current one).
        """
        principal.require(app, Permission.EDIT)
        if mode not in IMPORT_MODES:
            raise AppError(
                ErrorCode.INVALID_REQUEST, f"mode must be merge or replace, not {mode!r:.40}"
            )
        limits = self.ctx.limits
        # Parsing a large file is CPU work: off the event loop, so reads stay fast meanwhile.
        values = await asyncio.to_thread(parse_file, fmt, data, limits.max_value_bytes)
        now = utc_now()
        opened = self.ctx.store.reader() if dry_run else self.ctx.store.transaction()
        async with opened as q:
            ref = await require_env(q, app, env, lock=not dry_run)
            stored = await draft_items(q, ref)
            if mode == "merge":
                current = opened_items_by_key(self.ctx.keyring, app, env, stored)
                target = {k: item.value for k, item in current.items()} | values
            else:
                target = values
            # An item the file sets keeps its secret flag; a new one is not secret. A secret
            # is written even unchanged for a writer who may not see it (else the unchanged
            # revision would tell them the value they sent was the secret).
            blind = not may_see(principal, app)
            force = [k for k in values if blind and k in stored and stored[k].secret]
            change, sealed = await plan_checked(
                q,
                ref,
                self.ctx.keyring,
                stored,
                target,
                principal.name,
                now,
                limits.max_release_bytes,
                limits.max_items_per_env,
                Edits(force=force),
            )
            outcome = Outcome.of(change)
            if dry_run or not change:
                return ref.draft_revision, outcome
            await write_change(q, ref, sealed)
            await q.add_audit(
                now,
                principal.actor,
                AuditAction.DRAFT_IMPORT,
                f"{app}/{env}",
                f"{mode} from a {fmt} file ({len(values)} items): {outcome.summary}",
                app,
                env,
            )
        return change.revision, outcome
