"""`configcenter backup FILE` and `configcenter restore FILE`: the whole store as one document.

A backup is every row of every table in `TABLES`, read in one read-only transaction (one
consistent snapshot: REPEATABLE READ with a consistent snapshot on MariaDB, one WAL read
transaction on SQLite), written as gzip'd JSON with the schema version it was made at. Rows
are lists of JSON scalars under their column names, so a SQLite backup restores into MariaDB
and the other way round. The file is written to a temporary name in the same folder with mode
0600 (it holds password and token hashes) and renamed into place.

A restore reads and checks the whole file before it touches the store, then loads it in one
write transaction (all of it or none): into an empty store, or with `replace` in place of
the store's contents. Versions never go down for a client: see `restore` and
docs/failures.md ("Backup and restore").
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from server.domain.canonical import canonical_json
from server.domain.releases import restored_release
from server.errors import AppError, ErrorCode
from server.records import AuditAction, utc_now
from server.store.db import IntegrityError
from server.store.migrations import discover
from server.store.queries import Queries
from server.store.store import Store

FORMAT = "configcenter-backup"
FORMAT_VERSION = 1

# Every table of the schema, parents before children (rows are inserted in this order and
# deleted in the reverse one, so foreign keys hold throughout). A migration that adds a table
# adds it here too: a backup refuses to run while the schema has a table this list lacks
# (tests/domain/test_backup.py checks the list against both schemas).
TABLES: tuple[str, ...] = (
    "apps",
    # Sealed like secret values, with the same key.
    "access_keys",
    "envs",
    "items",
    "releases",
    "release_requests",
    "users",
    "tokens",
    "audit",
    "login_throttle",
    "retired_versions",
    # Secret values are backed up sealed, with the key check value they were sealed under.
    "secret_key_check",
)
# The migrations' own bookkeeping: the backup records the version instead.
NOT_BACKED_UP = frozenset({"schema_migrations"})

# Restoring into an empty store, nothing says which versions clients saw after the backup was
# made: every env moves this far above the backup's versions, unless --version-floor says.
RESTORE_MARGIN = 1000

Scalar = str | int | float | None


@dataclass(frozen=True)
class Table:
    """One table of a backup: its columns and rows."""

    columns: tuple[str, ...]
    rows: list[tuple[Scalar, ...]]


@dataclass(frozen=True)
class Backup:
    """A backup document, read and checked."""

    schema_version: int
    created_at: str
    source: str
    tables: Mapping[str, Table]

    @property
    def row_count(self) -> int:
        """Rows over every table."""
        return sum(len(table.rows) for table in self.tables.values())


@dataclass(frozen=True)
class Moved:
    """An env moved above the versions clients may have seen."""

    app: str
    env: str
    backup_version: int
    version: int


@dataclass(frozen=True)
class Restored:
    """What a restore did."""

    backup: Backup
    replaced_rows: int
    moved: list[Moved]


def invalid(message: str) -> AppError:
    """The error a file that is not a usable backup gets."""
    return AppError(ErrorCode.INVALID_BACKUP, message)


async def _check_tables(q: Queries) -> None:
    """Refuse a schema whose tables differ from TABLES (a migration added one, not listed)."""
    in_schema = set(await q.schema_tables()) - NOT_BACKED_UP
    missing = sorted(in_schema - set(TABLES))
    if missing:
        raise AppError(
            ErrorCode.INTERNAL,
            f"tables {', '.join(missing)} are in the schema but not in backup.TABLES; "
            "add them there",
        )
    absent = sorted(set(TABLES) - in_schema)
    if absent:
        raise AppError(
            ErrorCode.INTERNAL, f"tables {', '.join(absent)} of backup.TABLES are not in the schema"
        )


async def read_store(store: Store) -> Backup:
    """Every table as of one moment (one read-only transaction)."""
    known = len(discover(store.dialect))
    taken_at = utc_now()
    async with store.snapshot() as q:
        migrated = "schema_migrations" in await q.schema_tables()
        schema_version = await q.schema_version() if migrated else 0
        if schema_version != known:
            # TABLES and the columns describe this release's schema, not another one.
            raise AppError(
                ErrorCode.CONFLICT,
                f"the store is at schema version {schema_version} and this configcenter's is "
                f"{known}: back it up with the configcenter release of its schema, or "
                "`configcenter migrate` it first",
            )
        await _check_tables(q)
        tables: dict[str, Table] = {}
        for name in TABLES:
            columns = tuple(await q.table_columns(name))
            rows = [
                tuple(_scalar(name, value) for value in row)
                for row in await q.table_rows(name, columns)
            ]
            tables[name] = Table(columns, rows)
    return Backup(schema_version, taken_at, store.dialect, tables)


def _scalar(table: str, value: Any) -> Scalar:
    if value is None or isinstance(value, str | int | float):
        return value
    raise AppError(
        ErrorCode.INTERNAL,
        f"table {table} holds a {type(value).__name__}, which a backup cannot carry",
    )


def encode(backup: Backup) -> bytes:
    """The backup as its file's bytes (gzip'd JSON)."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": backup.schema_version,
        "created_at": backup.created_at,
        "source": backup.source,
        "tables": {
            name: {"columns": list(table.columns), "rows": [list(row) for row in table.rows]}
            for name, table in backup.tables.items()
        },
    }
    return gzip.compress(orjson.dumps(document), mtime=0)


def write_private(path: Path, data: bytes) -> None:
    """Write data to path atomically (temporary file in the same folder, then rename), 0600."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)


async def backup(store: Store, path: Path) -> Backup:
    """Write a consistent backup of the whole store to path."""
    taken = await read_store(store)
    try:
        write_private(path, encode(taken))
    except OSError as exc:
        raise AppError(
            ErrorCode.INVALID_REQUEST, f"cannot write {path}: {exc.strerror or exc}"
        ) from None
    return taken


def decode(data: bytes) -> Backup:
    """A backup file's bytes, checked to the last row; invalid_backup when anything is off."""
    try:
        document = orjson.loads(gzip.decompress(data))
    except (OSError, EOFError, zlib.error):
        raise invalid("the file is not a whole gzip file (truncated or damaged)") from None
    except orjson.JSONDecodeError:
        raise invalid("the file does not hold JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise invalid("the file is not a configcenter backup")
    version = document.get("format_version")
    if not isinstance(version, int) or version != FORMAT_VERSION:
        raise invalid(
            f"the backup is in format version {version!r}; this configcenter reads "
            f"version {FORMAT_VERSION} (a newer configcenter made it?)"
        )
    schema_version = document.get("schema_version")
    created_at = document.get("created_at")
    source = document.get("source")
    if not isinstance(schema_version, int) or not isinstance(created_at, str):
        raise invalid("the backup has no schema version or date")
    raw_tables = document.get("tables")
    if not isinstance(raw_tables, dict) or set(raw_tables) != set(TABLES):
        named = sorted(raw_tables) if isinstance(raw_tables, dict) else []
        raise invalid(f"the backup's tables are {named}, expected {sorted(TABLES)}")
    tables = {name: _table(name, raw_tables[name]) for name in TABLES}
    return Backup(schema_version, created_at, str(source), tables)


def _table(name: str, raw: Any) -> Table:
    if not isinstance(raw, dict):
        raise invalid(f"table {name} is not an object")
    columns, rows = raw.get("columns"), raw.get("rows")
    if (
        not isinstance(columns, list)
        or not columns
        or not all(isinstance(c, str) for c in columns)
        or len(set(columns)) != len(columns)
    ):
        raise invalid(f"table {name} has no list of columns")
    if not isinstance(rows, list):
        raise invalid(f"table {name} has no list of rows")
    checked: list[tuple[Scalar, ...]] = []
    for number, row in enumerate(rows, start=1):
        if (
            not isinstance(row, list)
            or len(row) != len(columns)
            or not all(v is None or isinstance(v, str | int | float) for v in row)
        ):
            raise invalid(f"row {number} of table {name} does not match its columns")
        checked.append(tuple(row))
    return Table(tuple(columns), checked)


def read_backup(path: Path) -> Backup:
    """A backup file, read and checked."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise invalid(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode(data)


async def restore(
    store: Store,
    path: Path,
    replace: bool = False,
    version_floor: int | None = None,
    actor: str = "cli",
) -> Restored:
    """Load a backup into the store in one transaction; all of it or nothing.

    The store must be at the backup's schema version. Without `replace` the store must be
    empty. Afterwards no env offers a version a client may already hold with other items:
    each env whose floor is above its backup version gets a new release (its backup items)
    above the floor; an env without releases has its version floor raised. The floor is
    `version_floor` when given; else, replacing a store, the versions that store had (the
    versions its clients saw); else (an empty store) the backup's own plus RESTORE_MARGIN.
    In cluster mode etcd knows better still: the refresh moves any env etcd holds at a higher
    version above it (`ReleaseService.restore_above`).
    """
    taken = read_backup(path)
    try:
        return await _load(store, path, taken, replace, version_floor, actor)
    except IntegrityError as exc:
        raise invalid(f"the backup's rows break a constraint of the schema: {exc}") from None


async def _load(
    store: Store,
    path: Path,
    taken: Backup,
    replace: bool,
    version_floor: int | None,
    actor: str,
) -> Restored:
    """The restore's one transaction."""
    now = utc_now()
    async with store.transaction() as q:
        schema = await q.schema_version()
        if taken.schema_version != schema:
            raise invalid(
                f"the backup is of schema version {taken.schema_version} and this store is at "
                f"{schema}; restore it with the configcenter release that made it"
                + (" (a newer one)" if taken.schema_version > schema else ", then upgrade")
            )
        await _check_tables(q)
        for name, table in taken.tables.items():
            columns = await q.table_columns(name)
            if set(columns) != set(table.columns):
                raise invalid(f"the backup's columns of {name} differ from the store's")
        counts = {name: await q.count_rows(name) for name in TABLES}
        existing = sum(counts.values())
        if existing and not replace:
            held = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
            raise AppError(
                ErrorCode.CONFLICT,
                f"the store is not empty ({held}); restore --replace replaces its contents",
            )
        seen = await _versions_seen(q) if existing else {}
        for name in reversed(TABLES):
            await q.delete_rows(name)
        for name in TABLES:
            table = taken.tables[name]
            await q.insert_rows(name, table.columns, table.rows)
        moved = await _move_above(q, seen, version_floor, bool(existing), actor, now)
        await q.add_audit(
            now,
            actor,
            AuditAction.STORE_RESTORE,
            path.name,
            f"restored a backup made {taken.created_at} ({taken.row_count} rows, schema "
            f"{taken.schema_version}, from {taken.source}); {existing} rows replaced; "
            f"{len(moved)} envs moved to a new version",
        )
    return Restored(taken, existing, moved)


async def _versions_seen(q: Queries) -> dict[tuple[str, str], int]:
    """The versions the store about to be replaced has handed out, per (app, env)."""
    seen: dict[tuple[str, str], int] = {}
    for ref, latest in await q.env_versions():
        seen[(ref.app, ref.name)] = max(latest, ref.version_floor)
    for app, env, version in await q.table_rows("retired_versions", ("app", "env", "version")):
        seen[(app, env)] = max(seen.get((app, env), 0), int(version))
    return seen


async def _move_above(
    q: Queries,
    seen: dict[tuple[str, str], int],
    version_floor: int | None,
    known: bool,
    actor: str,
    now: str,
) -> list[Moved]:
    """After the rows are in: every env above the versions its clients may hold."""
    moved: list[Moved] = []
    restored_envs = set()
    for ref, latest in await q.env_versions():
        key = (ref.app, ref.name)
        restored_envs.add(key)
        if version_floor is not None:
            floor = version_floor
        elif known:
            floor = seen.get(key, 0)
        else:
            floor = max(latest, ref.version_floor) + RESTORE_MARGIN
        if latest == 0:
            await q.raise_version_floor(ref.id, floor)
            continue
        if floor <= latest:
            continue
        previous = await q.release(ref.id, latest)
        assert previous is not None
        release = restored_release(previous, floor + 1, actor, now)
        await q.insert_release(ref.id, release, canonical_json(previous.items))
        await q.add_audit(
            now,
            actor,
            AuditAction.RELEASE_RESTORE,
            f"{ref.app}/{ref.name}@{release.version}",
            f"restored at version {latest}; published again as version {release.version}, "
            f"above version {floor} that clients may hold",
            ref.app,
            ref.name,
        )
        moved.append(Moved(ref.app, ref.name, latest, release.version))
    # Envs the replaced store had and the backup lacks: a later env of that name starts above.
    retired = {
        (str(app), str(env)): int(version)
        for app, env, version in await q.table_rows("retired_versions", ("app", "env", "version"))
    }
    for key, version in seen.items():
        if key not in restored_envs and version > retired.get(key, 0):
            await q.set_retired_version(*key, version)
    return moved


def describe(restored: Restored) -> Sequence[str]:
    """What the command prints after a restore."""
    taken = restored.backup
    lines = [
        f"restored {taken.row_count} rows (schema {taken.schema_version}, made "
        f"{taken.created_at} on {taken.source}); replaced {restored.replaced_rows} rows"
    ]
    lines.extend(
        f"{m.app}/{m.env}: version {m.backup_version} published again as version {m.version}"
        for m in restored.moved
    )
    return lines
