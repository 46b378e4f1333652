"""Gray releases: the draft published to the instances a rule matches, then widened, promoted
to everyone, or abandoned.

A gray release is version V like any release, stored and distributed (fenced, through etcd)
with its rule, status and step; the main release everyone else keeps is the one before it.
Widen, promote and abandon change V's gray part under the env's publish lock; abandon (and a
rollback) also make V+1, so no subscriber's version ever goes down.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from server.domain.apps import require_env
from server.domain.canonical import canonical_json
from server.domain.context import DomainContext
from server.domain.diff import diff_items
from server.domain.releases import (
    Gate,
    Plan,
    Planned,
    ReleaseService,
    check_draft_revision,
    check_no_gray,
    gate_for,
    opened_draft,
    sealed_publishable,
)
from server.domain.scopes import Permission, Principal
from server.domain.secrets import opened_release
from server.domain.validation import validate_comment
from server.errors import AppError, ErrorCode
from server.instances import LABEL_KEY_PATTERN, MAX_LABELS, check_instance
from server.records import AuditAction, EnvRef, Gray, GrayRule, GrayStatus, Release
from server.store.queries import Queries

MAX_RULE_INSTANCES = 1000
MAX_RULE_LABELS = MAX_LABELS
MAX_RULE_LABEL_VALUE = 128


def _invalid(message: str) -> AppError:
    return AppError(ErrorCode.INVALID_REQUEST, f"rule: {message}")


def gray_rule(
    labels: Mapping[str, str] | None, instances: Sequence[str] | None, percent: int | None
) -> GrayRule:
    """A rule from its parts as sent, or a 400: labels and instance ids as instances name
    themselves, a percent of 0 to 100, and at least one of the three."""
    if (labels is not None and not labels) or (instances is not None and not instances):
        raise _invalid("labels and instances, when given, are not empty")
    if not labels and not instances and percent is None:
        raise _invalid("give labels, instances or a percent")
    pairs = dict(labels or {})
    try:
        ids = frozenset(check_instance(i) for i in instances or ())
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    for key, value in pairs.items():
        # Any value is allowed: one no instance can have (it labels itself with printable
        # text) simply matches nobody.
        if LABEL_KEY_PATTERN.fullmatch(key) is None:
            raise _invalid(f"label keys must match ^{LABEL_KEY_PATTERN.pattern}$")
        if not 1 <= len(value) <= MAX_RULE_LABEL_VALUE:
            raise _invalid(f"label {key}: values are 1-{MAX_RULE_LABEL_VALUE} characters")
    if len(pairs) > MAX_RULE_LABELS or len(instances or ()) > MAX_RULE_INSTANCES:
        raise _invalid(f"at most {MAX_RULE_LABELS} labels and {MAX_RULE_INSTANCES} instances")
    if percent is not None and not 0 <= percent <= 100:
        raise _invalid("percent is 0 to 100")
    return GrayRule(labels=pairs, instances=ids, percent=percent)


def _active(latest: Release | None, ref: EnvRef) -> tuple[Release, Gray]:
    if latest is None or latest.gray is None or not latest.gray.active:
        raise AppError(ErrorCode.NO_GRAY, f"{ref.app}/{ref.name} has no active gray release")
    return latest, latest.gray


class GrayService:
    """Start, widen, promote, abandon and read an env's gray release."""

    def __init__(self, ctx: DomainContext, releases: ReleaseService) -> None:
        self.ctx = ctx
        self.releases = releases

    def matched(self, app: str, env: str, rule: GrayRule) -> dict[str, Any]:
        """How many of the env's live instances (every replica's) a rule takes, and which."""
        ids: dict[str, bool] = {}
        for record in self.ctx.instances.instances(app, env):
            taken = rule.matches(app, env, record.instance, record.labels)
            ids[record.instance] = ids.get(record.instance, False) or taken
        chosen = sorted(i for i, taken in ids.items() if taken)
        return {"matched": len(chosen), "total": len(ids), "instances": chosen}

    async def preview(
        self, principal: Principal, app: str, env: str, rule: GrayRule
    ) -> dict[str, Any]:
        """What a rule would take now, before a gray release is started or widened with it."""
        principal.require(app, Permission.VIEW)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
        return self.matched(ref.app, ref.name, rule)

    async def get(self, principal: Principal, app: str, env: str) -> tuple[Release, int]:
        """The active gray release (opened) and how many live instances it reaches; 404
        no_gray when there is none."""
        principal.require(app, Permission.VIEW)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            latest, gray = _active(await q.latest_release(ref.id), ref)
        matched = self.matched(ref.app, ref.name, gray.rule)["matched"]
        return opened_release(self.ctx.keyring, latest), matched

    async def start(
        self,
        principal: Principal,
        app: str,
        env: str,
        comment: str,
        rule: GrayRule,
        draft_revision: int | None = None,
        emergency: bool = False,
        gate: Gate | None = None,
    ) -> Release:
        """Publish the draft as version V to the instances the rule matches only."""
        comment = validate_comment(comment)
        plan = self.plan_start(principal.name, comment, rule, draft_revision=draft_revision)
        chosen = gate if gate is not None else gate_for(principal, emergency)
        return await self.releases.release(principal, app, env, plan, chosen)

    def plan_start(
        self,
        author: str,
        comment: str,
        rule: GrayRule,
        frozen: tuple[Mapping[str, str], Collection[str]] | None = None,
        draft_revision: int | None = None,
    ) -> Plan:
        """The plan of a gray release of the draft, or of the items (clear) and secret keys a
        request froze."""
        keyring = self.ctx.keyring

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            check_draft_revision(ref, draft_revision)
            stored_latest = await q.latest_release(ref.id)
            check_no_gray(stored_latest)
            if stored_latest is None:
                raise AppError(
                    ErrorCode.CONFLICT,
                    f"{ref.app}/{ref.name} has no release yet: publish one first (it is what "
                    "the instances outside the gray release keep)",
                )
            main = opened_release(keyring, stored_latest)
            items, secrets = frozen if frozen is not None else await opened_draft(q, keyring, ref)
            snap = sealed_publishable(
                keyring, ref, main, items, secrets, self.ctx.limits.max_release_bytes
            )
            change = diff_items(main.items, items, None)
            release = Release(
                app=ref.app,
                env=ref.name,
                version=self.releases.next_version(ref, main),
                checksum=snap.checksum,
                author=author,
                comment=comment,
                created_at=now,
                items=snap.items,
                secret_keys=snap.secret_keys,
                gray=Gray(rule, GrayStatus.ACTIVE, 1, main.version, stored_latest),
            )
            summary = (
                f"gray version {release.version} to {rule.to_json()}: {len(change.added)} "
                f"added, {len(change.changed)} changed, {len(change.removed)} removed; "
                f"the others keep version {main.version}"
            )
            return Planned(release, snap.text, AuditAction.GRAY_START, summary)

        return plan

    async def widen(self, principal: Principal, app: str, env: str, rule: GrayRule) -> Release:
        """A wider rule for the active gray release (409 gray_narrowing when it would drop an
        instance it takes); the newly matching instances get it at once."""

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            latest, gray = _active(await q.latest_release(ref.id), ref)
            dropped = gray.rule.narrowed_by(rule)
            if dropped:
                raise AppError(
                    ErrorCode.GRAY_NARROWING,
                    "a gray release only widens; this rule drops " + ", ".join(dropped[:5]),
                )
            wider = replace(gray, rule=rule, step=gray.step + 1)
            summary = f"gray version {latest.version} widened to {rule.to_json()}"
            changed = replace(latest, gray=wider)
            return Planned(changed, None, AuditAction.GRAY_WIDEN, summary, (latest.version, wider))

        return await self.releases.release(principal, app, env, plan, Gate.GRAY_COURSE)

    async def promote(self, principal: Principal, app: str, env: str, comment: str) -> Release:
        """The gray release becomes everyone's (no new version: the others move up to V)."""
        comment = validate_comment(comment)

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            latest, gray = _active(await q.latest_release(ref.id), ref)
            done = replace(gray, status=GrayStatus.PROMOTED, step=gray.step + 1, main=None)
            summary = f"gray version {latest.version} promoted to everyone" + (
                f": {comment}" if comment else ""
            )
            changed = replace(latest, gray=done)
            return Planned(changed, None, AuditAction.GRAY_PROMOTE, summary, (latest.version, done))

        return await self.releases.release(principal, app, env, plan, Gate.GRAY_COURSE)

    async def abandon(self, principal: Principal, app: str, env: str, comment: str) -> Release:
        """Everyone back to the main release's items, as version V+1 (the gray instances move
        up to it, the others see the same items under a newer version)."""
        comment = validate_comment(comment)

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            latest, gray = _active(await q.latest_release(ref.id), ref)
            main = await q.release(ref.id, gray.main_version)
            assert main is not None  # releases are never deleted while their env lives
            done = replace(gray, status=GrayStatus.ABANDONED, step=gray.step + 1, main=None)
            release = replace(
                main,
                version=self.releases.next_version(ref, latest),
                author=principal.name,
                comment=comment or f"gray version {latest.version} abandoned",
                created_at=now,
                rollback_of=None,
                gray=None,
            )
            # Sealed as stored: the values stay under the same item, env and app.
            stored = canonical_json(main.items)
            summary = (
                f"gray version {latest.version} abandoned: version {release.version} has the "
                f"items of version {main.version}"
            )
            return Planned(
                release, stored, AuditAction.GRAY_ABANDON, summary, (latest.version, done)
            )

        return await self.releases.release(principal, app, env, plan, Gate.GRAY_COURSE)
