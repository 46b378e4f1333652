"""Release requests: a snapshot frozen for review, released only when someone else approves it.

A request freezes what it asks to publish when it is made: the draft's items at a revision,
or the version a rollback copies; with a gray rule, the draft's items as a gray release to the
instances the rule takes. Approval publishes exactly that, through the same fenced
path as every release (`ReleaseService.release`), and marks the request approved in the
release's own transaction: two approvals of one request, on one replica or on two, make one
release. Any release of the env makes its pending requests stale (their base moved).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from server.domain.apps import require_env
from server.domain.context import DomainContext
from server.domain.diff import diff_items
from server.domain.gray import GrayService
from server.domain.releases import (
    Gate,
    Planned,
    ReleaseService,
    check_draft_revision,
    opened_draft,
    rollback_target,
    sealed_publishable,
)
from server.domain.scopes import Permission, Principal
from server.domain.secrets import may_see, open_value, opened_release
from server.domain.validation import validate_comment
from server.errors import AppError, ErrorCode, not_found
from server.records import (
    AuditAction,
    EnvRef,
    GrayRule,
    Release,
    ReleaseRequest,
    RequestStatus,
    utc_now,
)
from server.secretbox import Keyring
from server.store.queries import Queries

log = logging.getLogger(__name__)

# Each request shown is diffed against its base release: pages stay small.
MAX_PAGE = 200


def parse_status(value: str | None) -> RequestStatus | None:
    """A ?status= filter: one of the statuses, or None for all (400 for anything else)."""
    if value is None:
        return None
    try:
        return RequestStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in RequestStatus)
        raise AppError(
            ErrorCode.INVALID_REQUEST, f"status must be one of {known}, not {value[:40]!r}"
        ) from None


def _target(ref: EnvRef, request_id: int) -> str:
    return f"{ref.app}/{ref.name}/release-requests/{request_id}"


def _not_found(ref: EnvRef, request_id: int) -> AppError:
    return not_found(f"release request {request_id} of {ref.app}/{ref.name}")


def _decided(request: ReleaseRequest) -> AppError:
    """Why a request that is not pending cannot be decided again."""
    return AppError(
        ErrorCode.REQUEST_DECIDED, f"release request {request.id} is already {request.status}"
    )


def _stale(request: ReleaseRequest, latest: int | None = None) -> AppError:
    since = f"release {latest} was made" if latest else "another release was made"
    return AppError(
        ErrorCode.STALE_REQUEST,
        f"release request {request.id} is stale: {since} since its base version "
        f"{request.base_version}; make a new request",
    )


def _approvable(request: ReleaseRequest) -> None:
    """Refuse to approve a request that is stale (409 stale_request) or decided."""
    if request.status is RequestStatus.STALE:
        raise _stale(request)
    if request.status is not RequestStatus.PENDING:
        raise _decided(request)


# Clear items and their secret keys.
_Items = tuple[Mapping[str, str], frozenset[str]]
_NO_ITEMS: _Items = ({}, frozenset())


def _diff(base: _Items, frozen: _Items, reveal: bool) -> dict[str, Any]:
    """What the frozen snapshot changes against the base release, as a request shows it:
    secret values (of either side) null unless reveal."""
    secrets = base[1] | frozen[1]
    diff = diff_items(base[0], frozen[0], None).with_secrets(secrets)
    if not reveal:
        diff = diff.masked(secrets)
    shown = diff.to_json()
    del shown["base_version"]
    return shown


def opened_frozen(
    keyring: Keyring, ref: EnvRef, sealed: Mapping[str, str], secrets: frozenset[str]
) -> dict[str, str]:
    """A request's frozen items in clear."""
    return {
        k: open_value(keyring, ref.app, ref.name, k, v) if k in secrets else v
        for k, v in sealed.items()
    }


class _Snapshots:
    """Releases and frozen items read while showing requests, each read once, opened: sealed
    values differ for equal clear ones. The diff shows secrets null unless reveal."""

    def __init__(self, q: Queries, ref: EnvRef, keyring: Keyring, reveal: bool) -> None:
        self.q = q
        self.ref = ref
        self.keyring = keyring
        self.reveal = reveal
        self._releases: dict[int, _Items] = {}

    async def release_items(self, version: int | None) -> _Items:
        if version is None:
            return _NO_ITEMS
        if version not in self._releases:
            release = await self.q.release(self.ref.id, version)
            if release is None:
                self._releases[version] = _NO_ITEMS
            else:
                opened = opened_release(self.keyring, release)
                self._releases[version] = (opened.items, opened.secret_keys)
        return self._releases[version]

    async def frozen_items(self, request: ReleaseRequest) -> _Items:
        if request.rollback_to is not None:
            return await self.release_items(request.rollback_to)
        found = await self.q.release_request_items(request.id)
        if found is None:
            return _NO_ITEMS
        sealed, secrets = found
        return opened_frozen(self.keyring, self.ref, sealed, secrets), secrets

    async def with_diff(self, request: ReleaseRequest) -> ReleaseRequest:
        """The request with its diff against its base release."""
        frozen = await self.frozen_items(request)
        base = await self.release_items(request.base_version)
        return replace(request, diff=_diff(base, frozen, self.reveal))


def _summary(request: ReleaseRequest) -> str:
    if request.rollback_to is not None:
        return f"requested a rollback to version {request.rollback_to}"
    diff = request.diff
    to = f" as a gray release to {request.gray.to_json()}" if request.gray is not None else ""
    return (
        f"requested publishing revision {request.draft_revision}{to}: {len(diff['added'])} "
        f"added, {len(diff['changed'])} changed, {len(diff['removed'])} removed"
    )


class RequestService:
    """Make, list, approve, reject and withdraw release requests."""

    def __init__(self, ctx: DomainContext, releases: ReleaseService, gray: GrayService) -> None:
        self.ctx = ctx
        self.releases = releases
        self.gray = gray

    async def create(
        self,
        principal: Principal,
        app: str,
        env: str,
        comment: str,
        draft_revision: int | None = None,
        rollback_to: int | None = None,
        gray: GrayRule | None = None,
    ) -> ReleaseRequest:
        """A pending request freezing the draft (at draft_revision when given: 409
        draft_changed if it moved), to everyone or as a gray release by `gray`'s rule, or the
        rollback to a release; 409 nothing_to_publish when that would change nothing."""
        principal.require(app, Permission.EDIT)
        comment = validate_comment(comment)
        if rollback_to is not None and (draft_revision is not None or gray is not None):
            raise AppError(
                ErrorCode.INVALID_REQUEST,
                "give rollback_to, or draft_revision and gray: a rollback is to everyone",
            )
        keyring = self.ctx.keyring
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            # The env row lock orders this with publishes: the base is the latest release.
            ref = await require_env(q, app, env, lock=True)
            stored_latest = await q.latest_release(ref.id)
            if gray is not None and stored_latest is None:
                raise AppError(
                    ErrorCode.CONFLICT,
                    f"{app}/{env} has no release yet: publish one first (it is what the "
                    "instances outside the gray release keep)",
                )
            latest = opened_release(keyring, stored_latest) if stored_latest else None
            items_json: str | None = None
            secrets: frozenset[str] = frozenset()
            if rollback_to is not None:
                target, _ = await rollback_target(q, keyring, ref, rollback_to)
                frozen, secrets = target.items, target.secret_keys
            else:
                check_draft_revision(ref, draft_revision)
                frozen, draft_secrets = await opened_draft(q, keyring, ref)
                limit = self.ctx.limits.max_release_bytes
                # Frozen as a release is stored: the secret values sealed.
                snap = sealed_publishable(keyring, ref, latest, frozen, draft_secrets, limit)
                items_json, secrets = snap.text, snap.secret_keys
            base: _Items = (latest.items, latest.secret_keys) if latest else _NO_ITEMS
            request = ReleaseRequest(
                id=0,
                app=app,
                env=env,
                author=principal.actor,
                comment=comment,
                status=RequestStatus.PENDING,
                base_version=latest.version if latest else None,
                draft_revision=ref.draft_revision if rollback_to is None else None,
                rollback_to=rollback_to,
                created_at=now,
                gray=gray,
                diff=_diff(base, (frozen, secrets), may_see(principal, app)),
            )
            request_id = await q.insert_release_request(ref.id, request, items_json, secrets)
            request = replace(request, id=request_id)
            await q.add_audit(
                now,
                principal.actor,
                AuditAction.REQUEST_CREATE,
                _target(ref, request_id),
                _summary(request),
                app,
                env,
            )
        return request

    async def list_requests(
        self,
        principal: Principal,
        app: str,
        env: str,
        status: str | None,
        limit: int,
        before: int | None,
    ) -> list[ReleaseRequest]:
        """An env's requests newest first, optionally of one status."""
        principal.require(app, Permission.VIEW)
        wanted = parse_status(status)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            found = await q.release_requests(ref.id, wanted, max(1, min(limit, MAX_PAGE)), before)
            snapshots = self._snapshots(q, ref, principal)
            return [await snapshots.with_diff(request) for request in found]

    async def get_request(
        self, principal: Principal, app: str, env: str, request_id: int
    ) -> ReleaseRequest:
        """One request."""
        principal.require(app, Permission.VIEW)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            request = await self._require(q, ref, request_id)
            return await self._snapshots(q, ref, principal).with_diff(request)

    def _snapshots(self, q: Queries, ref: EnvRef, principal: Principal) -> _Snapshots:
        return _Snapshots(q, ref, self.ctx.keyring, may_see(principal, ref.app))

    async def approve(
        self, principal: Principal, app: str, env: str, request_id: int, comment: str
    ) -> Release:
        """Publish exactly what the request froze (publisher, not its author); the release and
        the request's approval commit together, or neither does."""
        principal.require(app, Permission.PUBLISH)
        comment = validate_comment(comment)
        async with self.ctx.store.reader() as q:
            ref = await require_env(q, app, env)
            request = await self._require(q, ref, request_id)
        if request.author == principal.actor:
            raise AppError(
                ErrorCode.SELF_APPROVAL,
                f"release request {request_id} is {principal.actor}'s own; another publisher "
                "must approve it",
            )
        _approvable(request)

        async def plan(q: Queries, ref: EnvRef, now: str) -> Planned:
            # Read again under the lock: another approval may have come first.
            current = await self._require(q, ref, request_id)
            _approvable(current)
            latest = await q.latest_version(ref.id) or None
            if latest != current.base_version:
                raise _stale(current, latest)
            if current.rollback_to is not None:
                planned = await self.releases.plan_rollback(
                    principal.name, current.rollback_to, current.comment
                )(q, ref, now)
            else:
                found = await q.release_request_items(current.id)
                assert found is not None, "a request without rollback_to froze items"
                sealed, secrets = found
                items = opened_frozen(self.ctx.keyring, ref, sealed, secrets)
                if current.gray is not None:
                    plan_frozen = self.gray.plan_start(
                        principal.name, current.comment, current.gray, (items, secrets)
                    )
                else:
                    plan_frozen = self.releases.plan_items(
                        principal.name, items, secrets, current.comment
                    )
                planned = await plan_frozen(q, ref, now)
            # Conditional: only a pending request becomes approved, in this very transaction.
            if not await q.decide_release_request(
                current.id,
                RequestStatus.APPROVED,
                principal.actor,
                now,
                comment,
                planned.release.version,
            ):
                raise _decided(current)
            return replace(
                planned,
                action=AuditAction.REQUEST_APPROVE,
                summary=f"approved release request {current.id} of {current.author}: "
                f"{planned.summary}",
            )

        try:
            return await self.releases.release(principal, app, env, plan, Gate.APPROVED)
        except AppError as exc:
            if exc.error is ErrorCode.STALE_REQUEST:
                await self._mark_stale(app, env, request_id)
            raise

    async def reject(
        self, principal: Principal, app: str, env: str, request_id: int, comment: str
    ) -> ReleaseRequest:
        """Decline a pending request (publisher)."""
        principal.require(app, Permission.PUBLISH)
        comment = validate_comment(comment)
        return await self._decide(
            principal, app, env, request_id, RequestStatus.REJECTED, comment, author_only=False
        )

    async def withdraw(self, principal: Principal, app: str, env: str, request_id: int) -> None:
        """Take back a pending request (its author, or an admin)."""
        principal.require(app, Permission.VIEW)
        await self._decide(
            principal, app, env, request_id, RequestStatus.WITHDRAWN, None, author_only=True
        )

    async def _decide(
        self,
        principal: Principal,
        app: str,
        env: str,
        request_id: int,
        status: RequestStatus,
        comment: str | None,
        *,
        author_only: bool,
    ) -> ReleaseRequest:
        """Move a pending request to rejected or withdrawn, audited, in one transaction."""
        now = utc_now()
        async with self.ctx.store.transaction() as q:
            ref = await require_env(q, app, env, lock=True)
            request = await self._require(q, ref, request_id)
            if author_only and request.author != principal.actor and not principal.is_admin:
                raise AppError(
                    ErrorCode.FORBIDDEN,
                    f"only {request.author} or an admin may withdraw release request {request_id}",
                )
            if request.status is not RequestStatus.PENDING:
                raise _decided(request)
            if not await q.decide_release_request(
                request_id, status, principal.actor, now, comment
            ):
                raise _decided(request)
            verb = "rejected" if status is RequestStatus.REJECTED else "withdrew"
            action = (
                AuditAction.REQUEST_REJECT
                if status is RequestStatus.REJECTED
                else AuditAction.REQUEST_WITHDRAW
            )
            await q.add_audit(
                now,
                principal.actor,
                action,
                _target(ref, request_id),
                f"{verb} release request {request_id} of {request.author}",
                app,
                env,
            )
            request = await self._require(q, ref, request_id)
            return await self._snapshots(q, ref, principal).with_diff(request)

    async def _mark_stale(self, app: str, env: str, request_id: int) -> None:
        """Record that a pending request's base is behind (found at approval)."""
        async with self.ctx.store.transaction() as q:
            await require_env(q, app, env, lock=True)
            if await q.decide_release_request(
                request_id, RequestStatus.STALE, None, utc_now(), None
            ):
                log.info("release request %d of %s/%s is stale", request_id, app, env)

    @staticmethod
    async def _require(q: Queries, ref: EnvRef, request_id: int) -> ReleaseRequest:
        request = await q.release_request(ref.id, request_id)
        if request is None:
            raise _not_found(ref, request_id)
        return request
