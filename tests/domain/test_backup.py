"""Backup and restore of the whole store, on SQLite and on a real MariaDB."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest

from server.__main__ import CLI_ACTOR
from server.config import AuthSection, Config, LimitsSection, StoreSection
from server.coord.local import LocalCoordinator
from server.domain import backup
from server.domain.context import DomainContext
from server.domain.services import Services
from server.errors import AppError, ErrorCode
from server.published import PublishedConfigs
from server.records import AuditAction
from server.store.db import open_database
from server.store.store import Store

CLI = CLI_ACTOR  # an admin, as the configcenter command acts


def _store(url: str, base: Path) -> Store:
    config = dataclasses.replace(Config(), store=StoreSection(url=url), base_dir=base)
    return Store(open_database(url, config.sqlite_path(), 4))


@contextlib.asynccontextmanager
async def opened(url: str, base: Path) -> AsyncIterator[Services]:
    """The domain services over a migrated store at url."""
    store = _store(url, base)
    await store.open()
    services = Services.build(
        DomainContext(store, LocalCoordinator(), PublishedConfigs(), LimitsSection()),
        AuthSection(),
    )
    try:
        yield services
    finally:
        services.close()
        await store.close()


async def populate(services: Services) -> None:
    """A bit of everything: apps, envs, items, releases, a deleted app, a user, a token."""
    await services.apps.create_app(CLI, "shop", "web shop", ["dev", "prod"])
    await services.apps.create_app(CLI, "gone", "", ["prod"])
    for version in (1, 2):
        await services.drafts.put_item(CLI, "shop", "prod", "pool.size", str(version * 10), "c")
        await services.releases.publish(CLI, "shop", "prod", f"release {version}")
    await services.drafts.put_item(CLI, "shop", "prod", "draft.only", "ünïcode \n\t\x01", None)
    await services.drafts.put_item(CLI, "gone", "prod", "k", "v", None)
    await services.releases.publish(CLI, "gone", "prod", "")
    await services.apps.delete_app(CLI, "gone")
    await services.users.add_user(CLI, "ops", "a long enough password", False, {"shop": "editor"})
    await services.auth.create_token(CLI, "svc", ["read:shop"])


async def latest(
    services: Services, app: str = "shop", env: str = "prod"
) -> tuple[int, dict[str, str]]:
    """(version, items) of an env's latest release in the store."""
    release = await services.releases.latest_release(app, env)
    assert release is not None
    return release.version, release.items


def tables_of(
    taken: backup.Backup,
) -> dict[str, tuple[tuple[str, ...], list[tuple[backup.Scalar, ...]]]]:
    """A backup's content, comparable across databases."""
    return {name: (t.columns, t.rows) for name, t in taken.tables.items()}


async def test_the_backup_lists_every_table_of_the_schema(store_url: str, tmp_path: Path) -> None:
    async with opened(store_url, tmp_path) as services:
        async with services.ctx.store.reader() as q:
            in_schema = set(await q.schema_tables())
    # A table a migration adds must be added to backup.TABLES, or backups would lose it.
    assert in_schema - backup.NOT_BACKED_UP == set(backup.TABLES)
    assert len(backup.TABLES) == len(set(backup.TABLES))


async def test_a_backup_refuses_a_schema_with_a_table_it_does_not_list(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with opened(sqlite_url, tmp_path) as services:
        async with services.ctx.store.transaction() as q:
            await q.conn.execute("CREATE TABLE later_feature (id INTEGER PRIMARY KEY)")
        with pytest.raises(AppError, match="later_feature"):
            await backup.backup(services.ctx.store, tmp_path / "b.gz")
    assert not (tmp_path / "b.gz").exists()


async def test_a_backup_refuses_a_store_of_another_schema_version(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = _store(sqlite_url, tmp_path)
    await store.open(run_migrations=False)
    try:
        with pytest.raises(AppError, match="schema version 0") as raised:
            await backup.backup(store, tmp_path / "b.gz")
        assert raised.value.error is ErrorCode.CONFLICT
    finally:
        await store.close()
    async with opened(sqlite_url, tmp_path) as services:
        async with services.ctx.store.transaction() as q:
            newest = await q.schema_version()
            await q.conn.execute("DELETE FROM schema_migrations WHERE version = ?", (newest,))
        with pytest.raises(AppError, match=f"schema version {newest - 1} "):
            await backup.backup(services.ctx.store, tmp_path / "b.gz")
    assert not (tmp_path / "b.gz").exists()


async def test_a_backup_is_private_written_atomically_and_replaces_an_older_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "cc.backup.gz"
    target.parent.mkdir()
    target.write_bytes(b"an older backup")
    async with opened(sqlite_url, tmp_path) as services:
        await populate(services)
        taken = await backup.backup(services.ctx.store, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(AppError, match="cannot write") as raised:
        async with opened(sqlite_url, tmp_path) as services:
            await backup.backup(services.ctx.store, tmp_path / "no-such-folder" / "b.gz")
    assert raised.value.error is ErrorCode.INVALID_REQUEST
    assert os.listdir(target.parent) == [target.name]  # no temporary file left
    assert tables_of(backup.read_backup(target)) == tables_of(taken)
    assert taken.row_count > 10


async def test_a_round_trip_sqlite_to_mariadb_to_sqlite_keeps_every_row(
    sqlite_url: str, mysql_url: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.gz", tmp_path / "second.gz"
    async with opened(sqlite_url, tmp_path) as services:
        await populate(services)
        original = await backup.backup(services.ctx.store, first)
    async with opened(mysql_url, tmp_path) as services:
        restored = await backup.restore(services.ctx.store, first, version_floor=0)
        assert restored.moved == []
        assert await latest(services) == (2, {"pool.size": "20"})
        await backup.backup(services.ctx.store, second)
    again = tmp_path / "again"
    again.mkdir()
    async with opened(f"sqlite:///{again}/store.db", again) as services:
        await backup.restore(services.ctx.store, second, version_floor=0)
        final = await backup.read_store(services.ctx.store)
        # Everything came back, signing in included.
        item = await services.drafts.get_item(CLI, "shop", "prod", "draft.only")
        assert item.value == "ünïcode \n\t\x01"
    want, got = tables_of(original), tables_of(final)
    # Each restore adds its own audit entry after the backup's.
    audit_columns, audit_rows = got.pop("audit")
    assert audit_columns == want["audit"][0]
    assert audit_rows[: len(want["audit"][1])] == want["audit"][1]
    action = audit_columns.index("action")
    assert [row[action] for row in audit_rows[len(want["audit"][1]) :]] == ["store.restore"] * 2
    del want["audit"]
    assert got == want


async def test_a_backup_taken_while_writes_go_on_is_one_consistent_moment(
    store_url: str, tmp_path: Path
) -> None:
    async with opened(store_url, tmp_path) as services:
        stop = asyncio.Event()

        async def write() -> int:
            n = 0
            while not stop.is_set():
                n += 1
                await services.apps.create_app(CLI, f"app{n}", "", ["prod"])
                await services.drafts.put_item(CLI, f"app{n}", "prod", "k", str(n), None)
                await services.releases.publish(CLI, f"app{n}", "prod", "")
            return n

        writer = asyncio.create_task(write())
        taken: list[backup.Backup] = []
        try:
            while len(taken) < 8:
                taken.append(await backup.read_store(services.ctx.store))
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            written = await writer
    assert written > 3
    for snapshot in taken:
        rows = {name: t.rows for name, t in snapshot.tables.items()}
        columns = {name: t.columns for name, t in snapshot.tables.items()}
        env_ids = {row[columns["envs"].index("id")] for row in rows["envs"]}
        release_envs = {row[columns["releases"].index("env_id")] for row in rows["releases"]}
        assert release_envs <= env_ids
        actions = [row[columns["audit"].index("action")] for row in rows["audit"]]
        # Each write is one transaction with its audit entry: the counts agree at any moment.
        assert actions.count("app.create") == len(rows["apps"]) == len(rows["envs"])
        assert actions.count("item.create") == len(rows["items"])
        assert actions.count("release.publish") == len(rows["releases"])
    assert len({len(s.tables["releases"].rows) for s in taken}) > 1  # writes did go on


def _rewrite(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    document = orjson.loads(gzip.decompress(path.read_bytes()))
    change(document)
    path.write_bytes(gzip.compress(orjson.dumps(document)))


def _set(key: str, value: object) -> Callable[[dict[str, object]], None]:
    return lambda document: document.__setitem__(key, value)


def _duplicate_app(document: dict[str, object]) -> None:
    apps = document["tables"]["apps"]  # type: ignore[index]
    first = list(apps["rows"][0])
    first[0] = 999
    apps["rows"].append(first)  # the same name twice: the unique key refuses it mid-restore


def _short_row(document: dict[str, object]) -> None:
    document["tables"]["envs"]["rows"][0].pop()  # type: ignore[index]


BAD_FILES: dict[str, Callable[[Path], object]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "corrupt": lambda p: p.write_bytes(p.read_bytes()[:20] + b"\xff" * 40 + p.read_bytes()[60:]),
    "not gzip": lambda p: p.write_bytes(b'{"format": "configcenter-backup"}'),
    "not json": lambda p: p.write_bytes(gzip.compress(b"\x00 not json")),
    "another format": lambda p: _rewrite(p, _set("format", "something-else")),
    "a newer format version": lambda p: _rewrite(p, _set("format_version", 2)),
    "a newer schema version": lambda p: _rewrite(p, _set("schema_version", 99)),
    "an older schema version": lambda p: _rewrite(p, _set("schema_version", 2)),
    "a missing table": lambda p: _rewrite(
        p,
        lambda d: d["tables"].pop("tokens"),  # type: ignore[attr-defined]
    ),
    "a row shorter than its columns": lambda p: _rewrite(p, _short_row),
    "rows that break a unique key": lambda p: _rewrite(p, _duplicate_app),
}


@pytest.mark.parametrize("damage", list(BAD_FILES))
async def test_restoring_a_bad_file_changes_nothing(
    store_url: str, tmp_path: Path, damage: str
) -> None:
    good, bad = tmp_path / "good.gz", tmp_path / "bad.gz"
    async with opened(store_url, tmp_path) as services:
        await populate(services)
        before = await backup.backup(services.ctx.store, good)
        bad.write_bytes(good.read_bytes())
        BAD_FILES[damage](bad)
        with pytest.raises(AppError) as raised:
            await backup.restore(services.ctx.store, bad, replace=True)
        assert raised.value.error is ErrorCode.INVALID_BACKUP
        if "schema" in damage:
            assert "schema version" in raised.value.message
        after = await backup.read_store(services.ctx.store)
    assert tables_of(after) == tables_of(before)


async def test_a_restore_into_a_store_with_rows_needs_replace(
    store_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "b.gz"
    async with opened(store_url, tmp_path) as services:
        await populate(services)
        before = await backup.backup(services.ctx.store, path)
        with pytest.raises(AppError, match="not empty") as raised:
            await backup.restore(services.ctx.store, path)
        assert raised.value.error is ErrorCode.CONFLICT
        assert tables_of(await backup.read_store(services.ctx.store)) == tables_of(before)


async def test_a_restore_replacing_a_store_moves_every_env_above_what_it_had(
    store_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "b.gz"
    async with opened(store_url, tmp_path) as services:
        await populate(services)  # shop/prod at version 2, pool.size 20
        await backup.backup(services.ctx.store, path)
        for version in (3, 4):
            await services.drafts.put_item(
                CLI, "shop", "prod", "pool.size", str(version * 10), None
            )
            await services.releases.publish(CLI, "shop", "prod", "")
        await services.apps.create_app(CLI, "later", "", ["prod"])
        await services.drafts.put_item(CLI, "later", "prod", "k", "v", None)
        await services.releases.publish(CLI, "later", "prod", "")
        restored = await backup.restore(services.ctx.store, path, replace=True)
        # Clients of the replaced store may hold version 4: the backup's items come as 5.
        assert [(m.app, m.env, m.backup_version, m.version) for m in restored.moved] == [
            ("shop", "prod", 2, 5)
        ]
        assert await latest(services) == (5, {"pool.size": "20"})
        entries = await services.list_audit(CLI, None, 2, None)
        assert [e.action for e in entries] == [
            AuditAction.STORE_RESTORE,
            AuditAction.RELEASE_RESTORE,
        ]
        # An app the backup lacks starts above what its clients saw when it is created again.
        await services.apps.create_app(CLI, "later", "", ["prod"])
        await services.drafts.put_item(CLI, "later", "prod", "k", "again", None)
        assert (await services.releases.publish(CLI, "later", "prod", "")).version == 2
        # The env that had no release yet (shop/dev) keeps publishing from its own floor.
        await services.drafts.put_item(CLI, "shop", "dev", "k", "v", None)
        assert (await services.releases.publish(CLI, "shop", "dev", "")).version == 1


async def test_a_restore_into_an_empty_store_leaves_a_margin_unless_told_a_floor(
    store_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "b.gz"
    async with opened(store_url, tmp_path) as services:
        await populate(services)
        await backup.backup(services.ctx.store, path)
    for floor, expected in ((None, 2 + backup.RESTORE_MARGIN + 1), (40, 41), (0, 2)):
        base = tmp_path / f"floor-{floor}"
        base.mkdir()
        async with opened(f"sqlite:///{base}/store.db", base) as services:
            await backup.restore(services.ctx.store, path, version_floor=floor)
            assert await latest(services) == (expected, {"pool.size": "20"})
