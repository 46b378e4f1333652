"""The store's queries about env approval settings and release requests.

A part of `Queries` (which inherits it): one storage interface, split by subject.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson

from server.records import ReleaseRequest, RequestStatus, gray_rule_from_record
from server.store.db import Connection, Row
from server.store.rows import snapshot_items

_REQUEST_COLUMNS = (
    "rr.id, a.name, e.name, rr.author, rr.comment, rr.status, rr.base_version, "
    "rr.draft_revision, rr.rollback_to, rr.created_at, rr.decided_by, "
    "rr.decided_at, rr.decision_comment, rr.release_version, rr.gray_json"
)
_REQUEST_FROM = (
    "FROM release_requests rr JOIN envs e ON e.id = rr.env_id JOIN apps a ON a.id = e.app_id"
)


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _release_request(row: Row) -> ReleaseRequest:
    return ReleaseRequest(
        id=int(row[0]),
        app=row[1],
        env=row[2],
        author=row[3],
        comment=row[4],
        status=RequestStatus(row[5]),
        base_version=_optional_int(row[6]),
        draft_revision=_optional_int(row[7]),
        rollback_to=_optional_int(row[8]),
        created_at=row[9],
        decided_by=row[10],
        decided_at=row[11],
        decision_comment=row[12],
        release_version=_optional_int(row[13]),
        gray=gray_rule_from_record(orjson.loads(row[14])) if row[14] is not None else None,
    )


class RequestQueries:
    """Approval settings and release requests."""

    conn: Connection

    async def set_approval_required(self, env_id: int, required: bool) -> None:
        """Whether the env's releases go through approved requests."""
        await self.conn.execute(
            "UPDATE envs SET approval_required = ? WHERE id = ?", (int(required), env_id)
        )

    async def insert_release_request(
        self,
        env_id: int,
        request: ReleaseRequest,
        items_json: str | None,
        secret_keys: Collection[str] = (),
    ) -> int:
        """A new pending request (its id and diff are ignored); returns the id it got."""
        _, request_id = await self.conn.execute(
            "INSERT INTO release_requests (env_id, author, comment, status, base_version, "
            "draft_revision, rollback_to, items_json, secret_keys_json, created_at, gray_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                env_id,
                request.author,
                request.comment,
                request.status.value,
                request.base_version,
                request.draft_revision,
                request.rollback_to,
                items_json,
                orjson.dumps(sorted(secret_keys)).decode() if items_json is not None else None,
                request.created_at,
                orjson.dumps(request.gray.to_json()).decode() if request.gray else None,
            ),
        )
        return request_id

    async def release_request(self, env_id: int, request_id: int) -> ReleaseRequest | None:
        """One request of an env."""
        row = await self.conn.fetchone(
            f"SELECT {_REQUEST_COLUMNS} {_REQUEST_FROM} WHERE rr.env_id = ? AND rr.id = ?",
            (env_id, request_id),
        )
        return _release_request(row) if row else None

    async def release_requests(
        self, env_id: int, status: RequestStatus | None, limit: int, before: int | None
    ) -> list[ReleaseRequest]:
        """An env's requests newest first, optionally of one status, paged by id."""
        clauses, params = ["rr.env_id = ?", "rr.id < ?"], [env_id, before or 2**62]
        if status is not None:
            clauses.append("rr.status = ?")
            params.append(status.value)  # type: ignore[arg-type]
        rows = await self.conn.fetchall(
            f"SELECT {_REQUEST_COLUMNS} {_REQUEST_FROM} WHERE "
            + " AND ".join(clauses)
            + " ORDER BY rr.id DESC LIMIT ?",
            (*params, limit),
        )
        return [_release_request(row) for row in rows]

    async def release_request_items(
        self, request_id: int
    ) -> tuple[dict[str, str], frozenset[str]] | None:
        """(the items a request froze, secret values sealed; its secret keys); None for a
        rollback request."""
        row = await self.conn.fetchone(
            "SELECT items_json, secret_keys_json FROM release_requests WHERE id = ?",
            (request_id,),
        )
        if not row or row[0] is None:
            return None
        return snapshot_items(row[0]), frozenset(orjson.loads(row[1] or "[]"))

    async def decide_release_request(
        self,
        request_id: int,
        status: RequestStatus,
        decided_by: str | None,
        decided_at: str,
        comment: str | None,
        release_version: int | None = None,
    ) -> bool:
        """Move a pending request to status; False when it was no longer pending."""
        count, _ = await self.conn.execute(
            "UPDATE release_requests SET status = ?, decided_by = ?, decided_at = ?, "
            "decision_comment = ?, release_version = ? WHERE id = ? AND status = ?",
            (
                status.value,
                decided_by,
                decided_at,
                comment,
                release_version,
                request_id,
                RequestStatus.PENDING.value,
            ),
        )
        return count > 0

    async def stale_release_requests(self, env_id: int, now: str) -> int:
        """Mark every pending request of an env stale (a release was just made)."""
        count, _ = await self.conn.execute(
            "UPDATE release_requests SET status = ?, decided_at = ? "
            "WHERE env_id = ? AND status = ?",
            (RequestStatus.STALE.value, now, env_id, RequestStatus.PENDING.value),
        )
        return count
