"""Every query, written once for both databases, grouped by the records they touch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import orjson

from server.records import (
    App,
    AuditAction,
    AuditEntry,
    EnvRef,
    Gray,
    Item,
    Release,
    Stamp,
    gray_from_record,
    gray_record,
)
from server.store.access_key_queries import AccessKeyQueries
from server.store.auth_queries import AuthQueries
from server.store.db import Connection, Row
from server.store.maintenance_queries import MaintenanceQueries
from server.store.request_queries import RequestQueries
from server.store.rows import item_from_row, snapshot_items

_RELEASE_COLUMNS = (
    "a.name, e.name, r.version, r.checksum, r.author, r.comment, r.created_at, r.rollback_of, "
    "r.secret_keys_json, r.gray_json"
)
_ITEM_COLUMNS = "key_name, value, comment, revision, updated_at, updated_by, secret"


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
        gray=gray_from_record(orjson.loads(row[9])) if row[9] is not None else None,
    )


class Queries(AuthQueries, RequestQueries, MaintenanceQueries, AccessKeyQueries):
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
            "SELECT a.name, a.description, a.created_at, a.anonymous_read, e.name FROM apps a "
            "LEFT JOIN envs e ON e.app_id = a.id ORDER BY a.name, e.id"
        )
        apps: dict[str, tuple[str, str, bool, list[str]]] = {}
        for name, description, created_at, anonymous_read, env in rows:
            entry = apps.setdefault(name, (description, created_at, bool(anonymous_read), []))
            if env is not None:
                entry[3].append(env)
        return [App(n, d, tuple(envs), c, a) for n, (d, c, a, envs) in apps.items()]

    async def get_app(self, name: str) -> App | None:
        """One app with its envs."""
        rows = await self.conn.fetchall(
            "SELECT a.name, a.description, a.created_at, a.anonymous_read, e.name FROM apps a "
            "LEFT JOIN envs e ON e.app_id = a.id WHERE a.name = ? ORDER BY e.id",
            (name,),
        )
        if not rows:
            return None
        envs = tuple(row[4] for row in rows if row[4] is not None)
        return App(rows[0][0], rows[0][1], envs, rows[0][2], bool(rows[0][3]))

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
        await self.conn.execute("DELETE FROM access_keys WHERE app_id = ?", (app_id,))
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

    async def update_app(self, app_id: int, description: str, anonymous_read: bool) -> None:
        """Set an app's description and whether the compatible APIs read it without a credential."""
        await self.conn.execute(
            "UPDATE apps SET description = ?, anonymous_read = ? WHERE id = ?",
            (description, int(anonymous_read), app_id),
        )

    async def anonymous_read_apps(self) -> set[str]:
        """The apps whose owner let the compatible APIs read them without a credential."""
        rows = await self.conn.fetchall("SELECT name FROM apps WHERE anonymous_read <> 0")
        return {row[0] for row in rows}

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
        return [item_from_row(row) for row in rows]

    async def item(self, env_id: int, key: str) -> Item | None:
        """One draft item."""
        row = await self.conn.fetchone(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE env_id = ? AND key_name = ?",
            (env_id, key),
        )
        return item_from_row(row) if row else None

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
        return _release(row, snapshot_items(row[10])) if row else None

    async def latest_release(self, env_id: int) -> Release | None:
        """The newest release with its items; an active gray release with its main release
        (`gray.main`), the one everyone else is served."""
        version = await self.latest_version(env_id)
        latest = await self.release(env_id, version) if version else None
        return await self._with_main(env_id, latest) if latest is not None else None

    async def _with_main(self, env_id: int, release: Release) -> Release:
        gray = release.gray
        if gray is None or not gray.active:
            return release
        main = await self.release(env_id, gray.main_version)
        return replace(release, gray=replace(gray, main=main))

    async def set_gray(self, env_id: int, version: int, gray: Gray) -> None:
        """A gray release's new rule or status (a widen, promote or abandon)."""
        await self.conn.execute(
            "UPDATE releases SET gray_json = ? WHERE env_id = ? AND version = ?",
            (orjson.dumps(gray_record(gray)).decode(), env_id, version),
        )

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
            "rollback_of, created_at, secret_keys_json, gray_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                orjson.dumps(gray_record(release.gray)).decode() if release.gray else None,
            ),
        )

    async def latest_releases(self, app: str | None = None) -> list[Release]:
        """The newest release of every env (of one app when given), with items; active gray
        releases with their main release."""
        where = "WHERE a.name = ?" if app is not None else ""
        rows = await self.conn.fetchall(
            f"SELECT {_RELEASE_COLUMNS}, r.items_json, r.env_id FROM releases r "
            "JOIN (SELECT env_id, MAX(version) AS version FROM releases GROUP BY env_id) m "
            "ON m.env_id = r.env_id AND m.version = r.version "
            "JOIN envs e ON e.id = r.env_id JOIN apps a ON a.id = e.app_id " + where,
            (app,) if app is not None else (),
        )
        return [
            await self._with_main(int(row[11]), _release(row, snapshot_items(row[10])))
            for row in rows
        ]

    async def latest_stamps(self) -> dict[tuple[str, str], Stamp]:
        """The newest (version, gray step) of every env that has released: a widen or promote
        changes the latest release's step, not its version."""
        rows = await self.conn.fetchall(
            "SELECT a.name, e.name, r.version, r.gray_json FROM releases r "
            "JOIN envs e ON e.id = r.env_id JOIN apps a ON a.id = e.app_id "
            "WHERE r.version = (SELECT MAX(m.version) FROM releases m WHERE m.env_id = r.env_id)"
        )
        return {
            (row[0], row[1]): (
                int(row[2]),
                gray_from_record(orjson.loads(row[3])).step if row[3] is not None else 0,
            )
            for row in rows
        }

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
