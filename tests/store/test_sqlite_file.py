"""The embedded store: files private to the server's user; closing under a query is a 503."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from server.errors import AppError
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


async def _read_while_closing(db: SqliteDatabase) -> None:
    async with db.reader() as conn:
        await db.close()  # as at shutdown, while a request is between two awaits
        await conn.fetchone("SELECT 1")


async def _write_while_closing(db: SqliteDatabase) -> None:
    async with db.transaction() as conn:
        await db.close()
        await conn.execute("CREATE TABLE t (x INTEGER)")


async def test_a_query_on_a_store_closed_under_it_is_store_unavailable(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "closing.db")
    for closing in (_read_while_closing, _write_while_closing):
        await db.open()
        with pytest.raises(AppError) as refused:
            await closing(db)
        assert refused.value.code == "store_unavailable", closing
