"""The store's queries for whole-store work: backup and restore, version floors, secret
rotation.

A part of `Queries` (which inherits it): one storage interface, split by subject.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

from server.records import EnvRef, Item
from server.store.db import Connection, Row
from server.store.rows import item_from_row


class MaintenanceQueries:
    """Whole tables, version floors and the secrets' key check value."""

    conn: Connection
    _for_update: str

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
        return [(int(r[0]), r[1], r[2], item_from_row(r[3:])) for r in rows]

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
