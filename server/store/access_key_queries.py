"""The store's queries about Apollo access keys (the secrets that sign Apollo clients' reads).

A part of `Queries` (which inherits it): one storage interface, split by subject.
"""

from __future__ import annotations

from server.records import AccessKey
from server.store.db import Connection, Row

_COLUMNS = "k.id, a.name, k.secret_sealed, k.created_at, k.created_by"


def _access_key(row: Row) -> AccessKey:
    return AccessKey(int(row[0]), row[1], row[2], row[3], row[4])


class AccessKeyQueries:
    """An app's access keys, their secrets sealed."""

    conn: Connection
    _for_update: str

    async def access_keys(self, app: str) -> list[AccessKey]:
        """The keys of an app, oldest first."""
        rows = await self.conn.fetchall(
            f"SELECT {_COLUMNS} FROM access_keys k JOIN apps a ON a.id = k.app_id "  # noqa: S608
            "WHERE a.name = ? ORDER BY k.id",
            (app,),
        )
        return [_access_key(row) for row in rows]

    async def insert_access_key(
        self, app_id: int, secret_sealed: str, created_at: str, created_by: str
    ) -> int:
        """A new key of an app; its id."""
        _, key_id = await self.conn.execute(
            "INSERT INTO access_keys (app_id, secret_sealed, created_at, created_by) "
            "VALUES (?, ?, ?, ?)",
            (app_id, secret_sealed, created_at, created_by),
        )
        return key_id

    async def delete_access_key(self, app_id: int, key_id: int) -> bool:
        """Remove one key of an app; False when it has no such key."""
        count, _ = await self.conn.execute(
            "DELETE FROM access_keys WHERE app_id = ? AND id = ?", (app_id, key_id)
        )
        return count > 0

    async def all_access_keys(self) -> list[AccessKey]:
        """Every app's keys, locked (a secrets rotation re-seals them)."""
        rows = await self.conn.fetchall(
            f"SELECT {_COLUMNS} FROM access_keys k JOIN apps a ON a.id = k.app_id "  # noqa: S608
            "ORDER BY k.id" + self._for_update
        )
        return [_access_key(row) for row in rows]

    async def set_access_key_secret(self, key_id: int, secret_sealed: str) -> None:
        """Replace a key's sealed secret (re-sealed under a new secrets key)."""
        await self.conn.execute(
            "UPDATE access_keys SET secret_sealed = ? WHERE id = ?", (secret_sealed, key_id)
        )
