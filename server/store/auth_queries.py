"""The store's queries about users, tokens, sessions and sign-in throttling.

A part of `Queries` (which inherits it): one storage interface, split by subject.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from server.records import Attempts, Token, User
from server.store.db import Connection, Row

_USER_COLUMNS = (
    "id, name, password_hash, is_admin, roles_json, created_at, disabled, last_login_at, changed_at"
)
_TOKEN_COLUMNS = (
    "id, name, kind, scopes_json, owner, created_at, expires_at, revoked_at, last_used_at, address"
)


def _user(row: Row) -> User:
    return User(
        id=int(row[0]),
        name=row[1],
        password_hash=row[2],
        is_admin=bool(row[3]),
        roles=json.loads(row[4]),
        created_at=row[5],
        disabled=bool(row[6]),
        last_login_at=row[7],
        changed_at=row[8],
    )


def _token(row: Row) -> Token:
    return Token(
        id=int(row[0]),
        name=row[1],
        kind=row[2],
        scopes=tuple(json.loads(row[3])),
        owner=row[4],
        created_at=row[5],
        expires_at=row[6],
        revoked_at=row[7],
        last_used_at=row[8],
        address=row[9],
    )


class AuthQueries:
    """Users, tokens, sessions, sign-in throttling."""

    conn: Connection
    _for_update: str
    _on_duplicate_skip: str

    # users

    async def user(self, name: str, lock: bool = False) -> User | None:
        """One user; with lock, its row is held until the transaction ends."""
        row = await self.conn.fetchone(
            f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?"
            + (self._for_update if lock else ""),
            (name,),
        )
        return _user(row) if row else None

    async def users(self) -> list[User]:
        """All users by name."""
        rows = await self.conn.fetchall(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")
        return [_user(row) for row in rows]

    async def count_users(self) -> int:
        """How many users exist."""
        row = await self.conn.fetchone("SELECT COUNT(*) FROM users")
        return int(row[0]) if row else 0

    async def enabled_admins(self) -> list[str]:
        """The names of enabled admins, their rows locked until the transaction ends."""
        rows = await self.conn.fetchall(
            "SELECT name FROM users WHERE is_admin = 1 AND disabled = 0 ORDER BY name"
            + self._for_update
        )
        return [row[0] for row in rows]

    async def insert_user(
        self,
        name: str,
        password_hash: str,
        is_admin: bool,
        roles: Mapping[str, str],
        now: str,
    ) -> None:
        """A new user."""
        await self.conn.execute(
            "INSERT INTO users (name, password_hash, is_admin, scopes_json, roles_json, "
            "created_at, changed_at) VALUES (?, ?, ?, '[]', ?, ?, ?)",
            (name, password_hash, int(is_admin), json.dumps(dict(roles)), now, now),
        )

    async def update_user(
        self, name: str, is_admin: bool, roles: Mapping[str, str], disabled: bool, now: str
    ) -> None:
        """Set a user's rights."""
        await self.conn.execute(
            "UPDATE users SET is_admin = ?, roles_json = ?, disabled = ?, changed_at = ? "
            "WHERE name = ?",
            (int(is_admin), json.dumps(dict(roles)), int(disabled), now, name),
        )

    async def update_user_password(self, name: str, password_hash: str, now: str) -> bool:
        """Set a user's password hash."""
        count, _ = await self.conn.execute(
            "UPDATE users SET password_hash = ?, changed_at = ? WHERE name = ?",
            (password_hash, now, name),
        )
        return count > 0

    async def set_last_login(self, name: str, now: str) -> None:
        """Remember a user's newest sign-in."""
        await self.conn.execute("UPDATE users SET last_login_at = ? WHERE name = ?", (now, name))

    async def delete_user(self, name: str) -> None:
        """Remove a user (its sessions are revoked by the caller first)."""
        await self.conn.execute("DELETE FROM users WHERE name = ?", (name,))

    # tokens and sessions

    async def insert_token(
        self,
        name: str,
        kind: str,
        token_hash: str,
        scopes: Sequence[str],
        owner: str,
        now: str,
        expires_at: str | None,
        address: str | None = None,
    ) -> int:
        """A new token or session; only the secret's hash is stored.

        An API token's name is unique among live ones (IntegrityError otherwise)."""
        live_name = name if kind == "api" else None
        _, token_id = await self.conn.execute(
            "INSERT INTO tokens (name, kind, token_hash, scopes_json, owner, created_at, "
            "expires_at, address, live_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                kind,
                token_hash,
                json.dumps(list(scopes)),
                owner,
                now,
                expires_at,
                address,
                live_name,
            ),
        )
        return token_id

    async def free_expired_token_name(self, name: str, now: str) -> None:
        """An expired token no longer holds its name."""
        await self.conn.execute(
            "UPDATE tokens SET live_name = NULL WHERE live_name = ? AND expires_at <= ?",
            (name, now),
        )

    async def token_by_hash(self, token_hash: str) -> Token | None:
        """The token whose secret hashes to this."""
        row = await self.conn.fetchone(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?",
            (token_hash,),
        )
        return _token(row) if row else None

    async def token(self, token_id: int) -> Token | None:
        """One token by id."""
        row = await self.conn.fetchone(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?",
            (token_id,),
        )
        return _token(row) if row else None

    async def tokens(self, kind: str) -> list[Token]:
        """Tokens of a kind, newest first."""
        rows = await self.conn.fetchall(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE kind = ? ORDER BY id DESC",
            (kind,),
        )
        return [_token(row) for row in rows]

    async def live_sessions(self, user: str | None, now: str) -> list[Token]:
        """Sessions neither revoked nor expired, of one user or of all, newest first."""
        clause, params = ("AND owner = ? ", (now, user)) if user is not None else ("", (now,))
        rows = await self.conn.fetchall(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE kind = 'session' "
            "AND revoked_at IS NULL AND expires_at > ? " + clause + "ORDER BY id DESC",
            params,
        )
        return [_token(row) for row in rows]

    async def revoke_token(self, token_id: int, now: str) -> bool:
        """Mark a token revoked; False when it was unknown or already revoked."""
        count, _ = await self.conn.execute(
            "UPDATE tokens SET revoked_at = ?, live_name = NULL "
            "WHERE id = ? AND revoked_at IS NULL",
            (now, token_id),
        )
        return count > 0

    async def revoke_sessions_of(self, user: str, now: str, keep: int | None = None) -> list[int]:
        """Revoke a user's live sessions (all, or all but `keep`); their ids."""
        rows = await self.conn.fetchall(
            "SELECT id FROM tokens WHERE kind = 'session' AND owner = ? AND revoked_at IS NULL "
            "AND id <> ?" + self._for_update,
            (user, keep if keep is not None else 0),
        )
        ids = [int(row[0]) for row in rows]
        for token_id in ids:
            await self.revoke_token(token_id, now)
        return ids

    async def touch_tokens(self, used: Mapping[int, str]) -> None:
        """Record when tokens were last used."""
        for token_id, at in used.items():
            await self.conn.execute(
                "UPDATE tokens SET last_used_at = ? WHERE id = ?", (at, token_id)
            )

    async def revoked_among(self, token_ids: Sequence[int]) -> list[int]:
        """Those of these token ids that are revoked."""
        marks = ", ".join("?" * len(token_ids))  # one bound parameter per id
        rows = await self.conn.fetchall(
            f"SELECT id FROM tokens WHERE id IN ({marks}) AND revoked_at IS NOT NULL",
            tuple(token_ids),
        )
        return [int(row[0]) for row in rows]

    async def session_users_changed(
        self, token_ids: Sequence[int]
    ) -> list[tuple[int, str | None, bool]]:
        """For sessions among these ids: (id, its user's changed_at or None when deleted,
        whether the user is disabled)."""
        marks = ", ".join("?" * len(token_ids))
        rows = await self.conn.fetchall(
            f"SELECT t.id, u.changed_at, u.disabled FROM tokens t "
            f"LEFT JOIN users u ON u.name = t.owner WHERE t.id IN ({marks}) "
            "AND t.kind = 'session'",
            tuple(token_ids),
        )
        return [(int(r[0]), r[1], bool(r[2])) for r in rows]

    async def delete_expired_sessions(self, now: str) -> int:
        """Forget sessions past their expiry."""
        count, _ = await self.conn.execute(
            "DELETE FROM tokens WHERE kind = 'session' AND expires_at < ?", (now,)
        )
        return count

    # sign-in throttling

    async def login_attempts(self, subject: str) -> Attempts | None:
        """A subject's failed sign-ins, or None when it has none."""
        row = await self.conn.fetchone(
            "SELECT failures, window_start, locked_until FROM login_throttle WHERE subject = ?",
            (subject,),
        )
        return Attempts(int(row[0]), float(row[1]), float(row[2])) if row else None

    async def lock_login_attempts(self, subject: str, now: float) -> Attempts:
        """A subject's row, created empty when missing, locked for this transaction."""
        # Insert first, then lock the row: locking a missing row takes gap locks on
        # MariaDB, and two replicas inserting behind gap locks deadlock.
        await self.conn.execute(
            "INSERT INTO login_throttle (subject, failures, window_start, locked_until) "
            "VALUES (?, 0, ?, 0)" + self._on_duplicate_skip,
            (subject, now),
        )
        row = await self.conn.fetchone(
            "SELECT failures, window_start, locked_until FROM login_throttle WHERE subject = ?"
            + self._for_update,
            (subject,),
        )
        assert row is not None
        return Attempts(int(row[0]), float(row[1]), float(row[2]))

    async def save_login_attempts(self, subject: str, attempts: Attempts) -> None:
        """Store a subject's new state (its row exists: lock_login_attempts made it)."""
        await self.conn.execute(
            "UPDATE login_throttle SET failures = ?, window_start = ?, locked_until = ? "
            "WHERE subject = ?",
            (attempts.failures, attempts.window_start, attempts.locked_until, subject),
        )

    async def clear_login_attempts(self, subject: str) -> None:
        """Forget a subject's failures (a successful sign-in)."""
        await self.conn.execute("DELETE FROM login_throttle WHERE subject = ?", (subject,))

    async def delete_stale_login_attempts(self, before: float) -> int:
        """Forget subjects whose last window and lock ended before `before`."""
        count, _ = await self.conn.execute(
            "DELETE FROM login_throttle WHERE window_start < ? AND locked_until < ?",
            (before, before),
        )
        return count
