"""Numbered SQL migrations in sql/<dialect>/NNN_name.sql, applied once each."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from server.records import utc_now
from server.store.db import Database

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent.parent / "sql"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, "
    "applied_at VARCHAR(32) NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path


def discover(dialect: str, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migrations for a dialect, in order; numbering must have no gaps."""
    found = []
    for path in sorted((sql_dir / dialect).glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise RuntimeError(f"migration file {path} is not named NNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {migration.path.name} breaks the numbering")
    return found


async def migrate(db: Database) -> list[Migration]:
    """Apply every pending migration; returns those applied (none on a current schema)."""
    applied: list[Migration] = []
    async with db.migration_lock() as conn:
        await conn.execute(_CREATE_VERSION_TABLE)
        rows = await conn.fetchall("SELECT version FROM schema_migrations")
        done = {int(row[0]) for row in rows}
        for migration in discover(db.dialect):
            if migration.version in done:
                continue
            log.info("applying migration %03d_%s", migration.version, migration.name)
            await db.run_script(conn, migration.path.read_text(encoding="utf-8"))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utc_now()),
            )
            applied.append(migration)
    return applied


async def current_version(db: Database) -> int:
    """The highest applied migration, 0 on an empty database."""
    async with db.reader() as conn:
        row = await conn.fetchone("SELECT MAX(version) FROM schema_migrations")
    return int(row[0]) if row and row[0] is not None else 0
