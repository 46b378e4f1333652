"""Migrations apply once, on both databases."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from server.config import Config, StoreSection
from server.store.db import open_database, split_statements
from server.store.migrations import current_version, discover, migrate
from server.store.store import Store


def store_for(url: str, tmp_path: Path) -> Store:
    config = dataclasses.replace(Config(), store=StoreSection(url=url), base_dir=tmp_path)
    return Store(open_database(url, config.sqlite_path(), 2))


async def test_migrations_apply_once(store_url: str, tmp_path: Path) -> None:
    store = store_for(store_url, tmp_path)
    await store.db.open()
    try:
        applied = await migrate(store.db)
        assert [m.version for m in applied] == [m.version for m in discover(store.dialect)]
        assert await current_version(store.db) == len(applied)
        assert await migrate(store.db) == []
        assert await current_version(store.db) == len(applied)
        async with store.reader() as q:
            assert await q.count_users() == 0
    finally:
        await store.close()


def test_both_dialects_have_the_same_migrations() -> None:
    sqlite = [(m.version, m.name) for m in discover("sqlite")]
    mysql = [(m.version, m.name) for m in discover("mysql")]
    assert sqlite == mysql
    assert sqlite[0] == (1, "init")


def test_split_statements() -> None:
    script = "-- comment\nCREATE TABLE a (x INT);\n\nCREATE TABLE b (y INT);\n"
    assert split_statements(script) == ["CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"]
