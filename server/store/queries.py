"""Every query, written once for both databases, grouped by the records they touch."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from server.records import (
    App,
    AuditAction,
    AuditEntry,
    EnvRef,
    Item,
    Release,
    ReleaseRequest,
    RequestStatus,
)
from server.store.auth_queries import AuthQueries
from server.store.db import Connection, Row

_RELEASE_COLUMNS = (
    "a.name, e.name, r.version, r.checksum, r.author, r.comment, r.created_at, r.rollback_of, "
    "r.secret_keys_json"
)
_ITEM_COLUMNS = "key_name, value, comment, revision, updated_at, updated_by, secret"
_REQUEST_COLUMNS = (
    "rr.id, a.name, e.name, rr.author, rr.comment, rr.status, rr.base_version, "
    "rr.draft_revision, rr.rollback_to, rr.created_at, rr.decided_by, "
    "rr.decided_at, rr.decision_comment, rr.release_version"
)
_REQUEST_FROM = (
    "FROM release_requests rr JOIN envs e ON e.id = rr.env_id JOIN apps a ON a.id = e.app_id"
)


def _release(row: Row, items: dict[str, str] | None = None) -> Release:
    return Release(
        app=row[0],
        env=row[1],
        version=int(row[2]),
        checksum=row[3],
        author=row[4],
        comment=row[5],
        created_at=row[6],
        rollback_of=int(row[7]) if row[7] is not None else None,
        items=items if items is not None else {},
        secret_keys=frozenset(orjson.loads(row[8])),
    )


def snapshot_items(text: str) -> dict[str, str]:
    """A stored snapshot's items (a release's, or a release request's frozen ones)."""
    items: dict[str, str] = orjson.loads(text)
    return items


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
    )


def _item(row: Row) -> Item:
    return Item(
        key=row[0],
        value=row[1],
        comment=row[2],
        revision=int(row[3]),
        updated_at=row[4],
        updated_by=row[5],
        secret=bool(row[6]),
    )


class Queries(AuthQueries):
    """The store's queries over one connection (a transaction or a reader)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._for_update = " FOR UPDATE" if conn.dialect == "mysql" else ""
        # Byte lengths and "has a control character other than \n \r \t" (draft_size).
        if conn.dialect == "mysql":
            self._bytes = "LENGTH({})"
            self._rare_control = "value REGEXP ?"
            self._rare_args: tuple[str, ...] = (r"[\x00-\x08\x0b\x0c\x0e-\x1f]",)
        else:
            # SQLite's LENGTH counts characters and stops at a NUL; a BLOB's counts bytes.
            self._bytes = "LENGTH(CAST({} AS BLOB))"
            self._rare_control = "(value GLOB ? OR INSTR(CAST(value AS BLOB), X'00') > 0)"
            self._rare_args = ("*[\x01-\x08\x0b\x0c\x0e-\x1f]*",)
        self._on_duplicate_skip = (
            " ON DUPLICATE KEY UPDATE subject = subject"
            if conn.dialect == "mysql"
            else " ON CONFLICT DO NOTHING"
        )

    # apps and envs

    async def list_apps(self) -> list[App]:
        """All apps with their envs, by name."""
        rows = await self.conn.fetchall(
            "SELECT a.name, a.description, a.created_at, e.name FROM apps a "
            "LEFT JOIN envs e ON e.app_id = a.id ORDER BY a.name, e.id"
        )
        apps: dict[str, tuple[str, str, list[str]]] = {}
        for name, description, created_at, env in rows:
            entry = apps.setdefault(name, (description, created_at, []))
            if env is not None:
                entry[2].append(env)
        return [App(n, d, tuple(envs), c) for n, (d, c, envs) in apps.items()]

    async def get_app(self, name: str) -> App | None:
        """One app with its envs."""
        rows = await self.conn.fetchall(
            "SELECT a.name, a.description, a.created_at, e.name FROM apps a "
            "LEFT JOIN envs e ON e.app_id = a.id WHERE a.name = ? ORDER BY e.id",
            (name,),
        )
        if not rows:
            return None
        envs = tuple(row[3] for row in rows if row[3] is not None)
        return App(rows[0][0], rows[0][1], envs, rows[0][2])

    async def app_id(self, name: str, lock: bool = False) -> int | None:
        """The id of an app, optionally locking its row."""
        row = await self.conn.fetchone(
            "SELECT id FROM apps WHERE name = ?" + (self._for_update if lock else ""), (name,)
        )
        return int(row[0]) if row else None

    async def insert_app(self, name: str, description: str, now: str, actor: str) -> int:
        """A new app row."""
        _, app_id = await self.conn.execute(
            "INSERT INTO apps (name, description, created_at, created_by) VALUES (?, ?, ?, ?)",
            (name, description, now, actor),
        )
        return app_id

    async def insert_env(self, app_id: int, name: str, now: str) -> int:
        """A new env row; its versions go on from those of a deleted env of the same name."""
        retired = await self.conn.fetchone(
            "SELECT r.version FROM retired_versions r JOIN apps a ON a.name = r.app "
            "WHERE a.id = ? AND r.env = ?",
            (app_id, name),
        )
        _, env_id = await self.conn.execute(
            "INSERT INTO envs (app_id, name, created_at, version_floor) VALUES (?, ?, ?, ?)",
            (app_id, name, now, int(retired[0]) if retired else 0),
        )
        return env_id

    async def delete_app(self, app_id: int) -> None:
        """An app, its envs, drafts and releases (audit entries stay)."""
        env_ids = "SELECT id FROM envs WHERE app_id = ?"
        await self.conn.execute(
            "DELETE FROM retired_versions WHERE app = (SELECT name FROM apps WHERE id = ?)",
            (app_id,),
        )
        # The floor already holds what an earlier deletion retired, so this only grows.
        await self.conn.execute(
            "INSERT INTO retired_versions (app, env, version) "
            "SELECT a.name, e.name, COALESCE(MAX(r.version), e.version_floor) "
            "FROM envs e JOIN apps a ON a.id = e.app_id "
            "LEFT JOIN releases r ON r.env_id = e.id "
            "WHERE e.app_id = ? GROUP BY a.name, e.name, e.version_floor",
            (app_id,),
        )
        await self.conn.execute(
            f"DELETE FROM release_requests WHERE env_id IN ({env_ids})", (app_id,)
        )
        await self.conn.execute(f"DELETE FROM releases WHERE env_id IN ({env_ids})", (app_id,))
        await self.conn.execute(f"DELETE FROM items WHERE env_id IN ({env_ids})", (app_id,))
        await self.conn.execute("DELETE FROM envs WHERE app_id = ?", (app_id,))
        await self.conn.execute("DELETE FROM apps WHERE id = ?", (app_id,))

    async def delete_env(self, env_id: int) -> None:
        """One env, its draft and releases; its last version is retired for a later namesake."""
        names = await self.conn.fetchone(
            "SELECT a.name, e.name FROM envs e JOIN apps a ON a.id = e.app_id WHERE e.id = ?",
            (env_id,),
        )
        if names is None:
            return
        await self.conn.execute(
            "DELETE FROM retired_versions WHERE app = ? AND env = ?", (names[0], names[1])
        )
        # The floor already holds what an earlier deletion retired, so this only grows.
        await self.conn.execute(
            "INSERT INTO retired_versions (app, env, version) "
            "SELECT a.name, e.name, COALESCE(MAX(r.version), e.version_floor) "
            "FROM envs e JOIN apps a ON a.id = e.app_id "
            "LEFT JOIN releases r ON r.env_id = e.id "
            "WHERE e.id = ? GROUP BY a.name, e.name, e.version_floor",
            (env_id,),
        )
        await self.conn.execute("DELETE FROM release_requests WHERE env_id = ?", (env_id,))
        await self.conn.execute("DELETE FROM releases WHERE env_id = ?", (env_id,))
        await self.conn.execute("DELETE FROM items WHERE env_id = ?", (env_id,))
        await self.conn.execute("DELETE FROM envs WHERE id = ?", (env_id,))

    async def update_app_description(self, app_id: int, description: str) -> None:
        """Set an app's description."""
        await self.conn.execute(
            "UPDATE apps SET description = ? WHERE id = ?", (description, app_id)
        )

    async def env(self, app: str, env: str, lock: bool = False) -> EnvRef | None:
        """One env of an app; with lock, its row is held until the transaction ends."""
        app_id = await self.app_id(app)
        if app_id is None:
            return None
        row = await self.conn.fetchone(
            "SELECT id, name, draft_revision, fence_epoch, fence_token, version_floor, "
            "approval_required FROM envs "
            "WHERE app_id = ? AND name = ?" + (self._for_update if lock else ""),
            (app_id, env),
        )
        if row is None:
            return None
        return EnvRef(
            int(row[0]), app, row[1], int(row[2]), row[3], int(row[4]), int(row[5]), bool(row[6])
        )

    async def set_draft_revision(self, env_id: int, revision: int) -> None:
        """Record the draft's newest revision."""
        await self.conn.execute(
            "UPDATE envs SET draft_revision = ? WHERE id = ?", (revision, env_id)
        )

    async def set_fence(self, env_id: int, epoch: str, token: int) -> None:
        """Record the newest publish lock that wrote this env."""
        await self.conn.execute(
            "UPDATE envs SET fence_epoch = ?, fence_token = ? WHERE id = ?", (epoch, token, env_id)
        )

    # draft items

    async def items(self, env_id: int) -> list[Item]:
        """The draft, by key."""
        rows = await self.conn.fetchall(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE env_id = ? ORDER BY key_name",
            (env_id,),
        )
        return [_item(row) for row in rows]

    async def item(self, env_id: int, key: str) -> Item | None:
        """One draft item."""
        row = await self.conn.fetchone(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE env_id = ? AND key_name = ?",
            (env_id, key),
        )
        return _item(row) if row else None

    async def count_items(self, env_id: int) -> int:
        """How many items the draft has."""
        row = await self.conn.fetchone("SELECT COUNT(*) FROM items WHERE env_id = ?", (env_id,))
        return int(row[0]) if row else 0

    async def draft_size(self, env_id: int) -> tuple[int, int, list[str]]:
        """The draft's size as canonical JSON, in parts: (items, bytes, values to finish).

        bytes is the sum over items of `"key":"value",` in UTF-8 with `"`, `\\`, newline,
        carriage return and tab escaped (each one byte more); the values returned hold other
        control characters, whose escapes the caller adds (canonical.rare_escape_surplus).
        Summed by the database so that a write never loads nor serialises the whole draft.
        """
        b = self._bytes
        stripped = (
            "REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(value, ?, ''), ?, ''), ?, ''), ?, ''), ?, '')"
        )
        row = await self.conn.fetchone(
            f"SELECT COUNT(*), COALESCE(SUM({b.format('key_name')} + 6 + 2 * {b.format('value')}"
            f" - {b.format(stripped)}), 0) FROM items WHERE env_id = ?",
            ('"', "\\", "\n", "\r", "\t", env_id),
        )
        count, size = (int(row[0]), int(row[1])) if row else (0, 0)
        rare = await self.conn.fetchall(
            f"SELECT value FROM items WHERE env_id = ? AND {self._rare_control}",
            (env_id, *self._rare_args),
        )
        return count, size, [r[0] for r in rare]

    async def insert_items(self, env_id: int, items: Sequence[Item]) -> None:
        """New draft items."""
        await self.conn.executemany(
            "INSERT INTO items (env_id, key_name, value, comment, revision, updated_at, "
            "updated_by, secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    env_id,
                    i.key,
                    i.value,
                    i.comment,
                    i.revision,
                    i.updated_at,
                    i.updated_by,
                    int(i.secret),
                )
                for i in items
            ],
        )

    async def update_items(self, env_id: int, items: Sequence[Item]) -> None:
        """Replace existing draft items."""
        await self.conn.executemany(
            "UPDATE items SET value = ?, comment = ?, revision = ?, updated_at = ?, "
            "updated_by = ?, secret = ? WHERE env_id = ? AND key_name = ?",
            [
                (
                    i.value,
                    i.comment,
                    i.revision,
                    i.updated_at,
                    i.updated_by,
                    int(i.secret),
                    env_id,
                    i.key,
                )
                for i in items
            ],
        )

    async def delete_items(self, env_id: int, keys: Sequence[str]) -> None:
        """Remove draft items."""
        await self.conn.executemany(
            "DELETE FROM items WHERE env_id = ? AND key_name = ?", [(env_id, k) for k in keys]
        )

    # releases

    async def latest_version(self, env_id: int) -> int:
        """The newest release's version, 0 before the first."""
        row = await self.conn.fetchone(
            "SELECT MAX(version) FROM releases WHERE env_id = ?", (env_id,)
        )
        return int(row[0]) if row and row[0] is not None else 0

    async def release(self, env_id: int, version: int) -> Release | None:
        """One release with its items."""
        row = await self.conn.fetchone(
            f"SELECT {_RELEASE_COLUMNS}, r.items_json FROM releases r "
            "JOIN envs e ON e.id = r.env_id JOIN apps a ON a.id = e.app_id "
            "WHERE r.env_id = ? AND r.version = ?",
            (env_id, version),
        )
        return _release(row, snapshot_items(row[9])) if row else None

    async def latest_release(self, env_id: int) -> Release | None:
        """The newest release with its items."""
        version = await self.latest_version(env_id)
        return await self.release(env_id, version) if version else None

    async def releases(self, env_id: int, limit: int, before: int | None) -> list[Release]:
        """Releases newest first, without items."""
        rows = await self.conn.fetchall(
            f"SELECT {_RELEASE_COLUMNS} FROM releases r "
            "JOIN envs e ON e.id = r.env_id JOIN apps a ON a.id = e.app_id "
            "WHERE r.env_id = ? AND r.version < ? ORDER BY r.version DESC LIMIT ?",
            (env_id, before if before is not None else 2**62, limit),
        )
        return [_release(row) for row in rows]

    async def insert_release(self, env_id: int, release: Release, items_json: str) -> None:
        """A new release row; the unique (env, version) key refuses a duplicate."""
        await self.conn.execute(
            "INSERT INTO releases (env_id, version, items_json, checksum, author, comment, "
            "rollback_of, created_at, secret_keys_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                env_id,
                release.version,
                items_json,
                release.checksum,
                release.author,
                release.comment,
                release.rollback_of,
                release.created_at,
                orjson.dumps(sorted(release.secret_keys)).decode(),
            ),
        )

    async def latest_releases(self, app: str | None = None) -> list[Release]:
        """The newest release of every env (of one app when given), with items."""
        where = "WHERE a.name = ?" if app is not None else ""
        rows = await self.conn.fetchall(
            f"SELECT {_RELEASE_COLUMNS}, r.items_json FROM releases r "
            "JOIN (SELECT env_id, MAX(version) AS version FROM releases GROUP BY env_id) m "
            "ON m.env_id = r.env_id AND m.version = r.version "
            "JOIN envs e ON e.id = r.env_id JOIN apps a ON a.id = e.app_id " + where,
            (app,) if app is not None else (),
        )
        return [_release(row, snapshot_items(row[9])) for row in rows]

    async def latest_versions(self) -> dict[tuple[str, str], int]:
        """The newest version of every env that has released."""
        rows = await self.conn.fetchall(
            "SELECT a.name, e.name, MAX(r.version) FROM releases r "
            "JOIN envs e ON e.id = r.env_id JOIN apps a ON a.id = e.app_id "
            "GROUP BY a.name, e.name"
        )
        return {(row[0], row[1]): int(row[2]) for row in rows}

    # audit

    async def add_audit(
        self,
        at: str,
        actor: str,
        action: AuditAction,
        target: str,
        summary: str,
        app: str | None = None,
        env: str | None = None,
    ) -> None:
        """Record a write; always inside the write's own transaction."""
        await self.conn.execute(
            "INSERT INTO audit (at, actor, action, app, env, target, summary) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, actor, action.value, app, env, target[:512], summary),
        )

    async def audit(
        self,
        app: str | None,
        limit: int,
        before: int | None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Audit entries newest first, paged by id; optionally of one app, one actor, and one
        action (`user.create`) or family of actions (`user.*`)."""
        clauses, params = ["id < ?"], [before if before is not None else 2**62]
        for column, value in (("app", app), ("actor", actor)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)  # type: ignore[arg-type]
        if action is not None and action.endswith(".*"):
            # A prefix match on the family; the pattern holds no LIKE wildcard of the caller's.
            clauses.append("action LIKE ?")
            params.append(action[:-1] + "%")  # type: ignore[arg-type]
        elif action is not None:
            clauses.append("action = ?")
            params.append(action)  # type: ignore[arg-type]
        rows = await self.conn.fetchall(
            "SELECT id, at, actor, action, app, env, target, summary FROM audit WHERE "
            + " AND ".join(clauses)
            + " ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [AuditEntry(int(r[0]), *r[1:]) for r in rows]

    # env settings and release requests

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
            "draft_revision, rollback_to, items_json, secret_keys_json, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    # backup and restore: whole tables, named by server.domain.backup.TABLES

    async def schema_version(self) -> int:
        """The highest migration applied to this database."""
        row = await self.conn.fetchone("SELECT MAX(version) FROM schema_migrations")
        return int(row[0]) if row and row[0] is not None else 0

    async def schema_tables(self) -> list[str]:
        """Every table of the schema, by name (the database's own bookkeeping left out)."""
        if self.conn.dialect == "mysql":
            sql = (
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
            )
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        return sorted(str(row[0]) for row in await self.conn.fetchall(sql))

    async def table_columns(self, table: str) -> list[str]:
        """A table's columns in their schema order."""
        if self.conn.dialect == "mysql":
            sql = (
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position"
            )
        else:
            sql = "SELECT name FROM pragma_table_info(?) ORDER BY cid"
        return [str(row[0]) for row in await self.conn.fetchall(sql, (_identifier(table),))]

    async def table_rows(self, table: str, columns: Sequence[str]) -> list[Row]:
        """Every row of a table, ordered by its leading columns (its key in our schema)."""
        names = ", ".join(_identifier(c) for c in columns)
        order = ", ".join(str(n) for n in range(1, min(3, len(columns)) + 1))
        # Identifiers checked above; they come from the schema, never from a request.
        sql = f"SELECT {names} FROM {_identifier(table)} ORDER BY {order}"
        return await self.conn.fetchall(sql)

    async def count_rows(self, table: str) -> int:
        """How many rows a table holds."""
        row = await self.conn.fetchone(f"SELECT COUNT(*) FROM {_identifier(table)}")
        return int(row[0]) if row else 0

    async def delete_rows(self, table: str) -> None:
        """Empty a table (inside a restore's transaction)."""
        await self.conn.execute(f"DELETE FROM {_identifier(table)}")

    async def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """Rows as a backup holds them, ids included."""
        if not rows:
            return
        names = ", ".join(_identifier(c) for c in columns)
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {_identifier(table)} ({names}) VALUES ({marks})"
        await self.conn.executemany(sql, rows)

    async def env_versions(self) -> list[tuple[EnvRef, int]]:
        """Every env with its newest release's version (0 before the first)."""
        rows = await self.conn.fetchall(
            "SELECT e.id, a.name, e.name, e.draft_revision, e.fence_epoch, e.fence_token, "
            "e.version_floor, COALESCE(MAX(r.version), 0) FROM envs e "
            "JOIN apps a ON a.id = e.app_id LEFT JOIN releases r ON r.env_id = e.id "
            "GROUP BY e.id, a.name, e.name, e.draft_revision, e.fence_epoch, e.fence_token, "
            "e.version_floor ORDER BY a.name, e.name"
        )
        return [
            (EnvRef(int(r[0]), r[1], r[2], int(r[3]), r[4], int(r[5]), int(r[6])), int(r[7]))
            for r in rows
        ]

    async def raise_version_floor(self, env_id: int, floor: int) -> None:
        """Make an env's next release come after `floor` (it never goes down)."""
        await self.conn.execute(
            "UPDATE envs SET version_floor = ? WHERE id = ? AND version_floor < ?",
            (floor, env_id, floor),
        )

    async def set_retired_version(self, app: str, env: str, version: int) -> None:
        """Record the last version an env that no longer exists handed out."""
        await self.conn.execute(
            "DELETE FROM retired_versions WHERE app = ? AND env = ?", (app, env)
        )
        await self.conn.execute(
            "INSERT INTO retired_versions (app, env, version) VALUES (?, ?, ?)",
            (app, env, version),
        )

    # secrets: the key check value and rotation (server/domain/secrets.py)

    async def secret_key_check(self) -> tuple[str, str] | None:
        """(key id, sealed check text) of the cluster's secrets key, None before the first."""
        row = await self.conn.fetchone(
            "SELECT key_id, check_value FROM secret_key_check WHERE id = 1"
        )
        return (row[0], row[1]) if row else None

    async def insert_secret_key_check(self, key_id: str, check: str, now: str) -> None:
        """The first key check value; IntegrityError when another replica wrote it first."""
        await self.conn.execute(
            "INSERT INTO secret_key_check (id, key_id, check_value, updated_at) "
            "VALUES (1, ?, ?, ?)",
            (key_id, check, now),
        )

    async def set_secret_key_check(self, key_id: str, check: str, now: str) -> None:
        """Replace the key check value (a rotation), or write the first."""
        await self.conn.execute("DELETE FROM secret_key_check WHERE id = 1")
        await self.insert_secret_key_check(key_id, check, now)

    async def secret_items(self) -> list[tuple[int, str, str, Item]]:
        """Every secret draft item of every env: (env id, app, env, item), locked."""
        rows = await self.conn.fetchall(
            "SELECT i.env_id, a.name, e.name, i.key_name, i.value, i.comment, i.revision, "
            "i.updated_at, i.updated_by, i.secret FROM items i "
            "JOIN envs e ON e.id = i.env_id JOIN apps a ON a.id = e.app_id "
            "WHERE i.secret = 1" + self._for_update
        )
        return [(int(r[0]), r[1], r[2], _item(r[3:])) for r in rows]

    async def set_item_value(self, env_id: int, key: str, value: str) -> None:
        """Replace one item's stored value in place (a re-sealed secret: same revision)."""
        await self.conn.execute(
            "UPDATE items SET value = ? WHERE env_id = ? AND key_name = ?", (value, env_id, key)
        )

    async def secret_releases(self) -> list[tuple[int, str, str, str, frozenset[str]]]:
        """Every release holding secrets: (release id, app, env, items_json, secret keys)."""
        rows = await self.conn.fetchall(
            "SELECT r.id, a.name, e.name, r.items_json, r.secret_keys_json FROM releases r "
            "JOIN envs e ON e.id = r.env_id JOIN apps a ON a.id = e.app_id "
            "WHERE r.secret_keys_json <> '[]'" + self._for_update
        )
        return [(int(r[0]), r[1], r[2], r[3], frozenset(orjson.loads(r[4]))) for r in rows]

    async def set_release_items(self, release_id: int, items_json: str) -> None:
        """Replace a release's stored items (re-sealed secrets: the clear items are the same)."""
        await self.conn.execute(
            "UPDATE releases SET items_json = ? WHERE id = ?", (items_json, release_id)
        )


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def _identifier(name: str) -> str:
    """A table or column name, checked before it is written into SQL."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name
