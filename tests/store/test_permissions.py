"""The embedded store keeps its files private to the server's user."""

from __future__ import annotations

import stat
from pathlib import Path

from server.store.db import SqliteDatabase


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _write_once(path: Path) -> None:
    db = SqliteDatabase(path)
    await db.open()
    try:
        async with db.transaction() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            await conn.execute("INSERT INTO t VALUES (?)", (1,))
        for suffix in ("", "-wal", "-shm"):
            assert _mode(path.with_name(path.name + suffix)) == 0o600, suffix
    finally:
        await db.close()


async def test_a_new_data_folder_is_0700_and_the_database_files_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "configcenter.db"
    await _write_once(path)
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600


async def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "configcenter.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    await _write_once(path)
    assert _mode(path) == 0o600
