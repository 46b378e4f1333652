"""Two database adapters behind one small interface, so every query is written once.

Queries use `?` placeholders; the MySQL adapter rewrites them for aiomysql.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiomysql
import aiosqlite
import pymysql

from server.errors import AppError, ErrorCode

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
Params = Sequence[Any]


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# SQLite gives its -wal and -shm files the database file's permissions.
_SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def _prepare_private_files(path: Path) -> None:
    """The data folder 0700 when it is made here; the database and its side files 0600."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=PRIVATE_DIR_MODE)
    elif path.parent.stat().st_mode & 0o077:
        log.warning(
            "the folder of the database, %s, is open to other users (mode %o); chmod 700 it",
            path.parent,
            path.parent.stat().st_mode & 0o777,
        )
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE))
    for suffix in _SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            if side.stat().st_mode & 0o077:
                side.chmod(PRIVATE_FILE_MODE)
                log.info("made %s private (mode 600)", side)


class IntegrityError(Exception):
    """A unique or foreign key constraint refused a write."""


def unavailable(exc: BaseException) -> AppError:
    """The store could not be reached or answered with an operational error."""
    return AppError(ErrorCode.STORE_UNAVAILABLE, f"the store is unavailable: {type(exc).__name__}")


class Connection(Protocol):
    """One connection, inside a transaction or in autocommit for reads."""

    dialect: str

    async def execute(self, sql: str, params: Params = ()) -> tuple[int, int]:
        """Run a statement; returns (rowcount, lastrowid)."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run a statement once per parameter row."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row, or None."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row."""
        ...


class Database(Protocol):
    """A connected database: transactions for writes, a reader for reads."""

    dialect: str

    async def open(self) -> None:
        """Connect."""
        ...

    async def close(self) -> None:
        """Disconnect."""
        ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        ...

    def reader(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A connection for reads."""
        ...

    def snapshot(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A read-only transaction that sees one consistent state of every table (backups)."""
        ...

    def migration_lock(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A connection holding a lock that keeps concurrent migrators out."""
        ...

    async def run_script(self, conn: Connection, script: str) -> None:
        """Run a multi-statement SQL script (DDL)."""
        ...


def split_statements(script: str) -> list[str]:
    """Split a migration file into statements at semicolons that end a line."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements = "\n".join(lines).split(";\n")
    return [s.strip().rstrip(";") for s in statements if s.strip().rstrip(";").strip()]


class _SqliteConnection:
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> tuple[int, int]:
        try:
            cursor = await self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        rowcount, lastrowid = cursor.rowcount, cursor.lastrowid or 0
        await cursor.close()
        return rowcount, lastrowid

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        try:
            await self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self._conn.execute_fetchall(sql, params)
        for row in rows:
            return tuple(row)
        return None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return [tuple(row) for row in await self._conn.execute_fetchall(sql, params)]


class SqliteDatabase:
    """An embedded SQLite file: one writer connection (writes serialised), one reader (WAL)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def open(self) -> None:
        _prepare_private_files(self.path)
        self._writer = await self._connect()
        self._reader = await self._connect()

    async def close(self) -> None:
        connections = (self._reader, self._writer)
        # Forgotten before they close: a query that comes meanwhile is told the store is gone.
        self._reader = self._writer = None
        for conn in connections:
            if conn is not None:
                await conn.close()

    @contextlib.contextmanager
    def _as_unavailable(self, conn: aiosqlite.Connection) -> Iterator[None]:
        """SQLite's operational errors, and any error of a connection closed meanwhile, as 503."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise unavailable(exc) from exc
        except (sqlite3.ProgrammingError, ValueError) as exc:
            # sqlite3 says ProgrammingError while aiosqlite closes, ValueError once it has.
            if conn is self._reader or conn is self._writer:
                raise  # still open: a programming error indeed
            raise unavailable(exc) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        writer = self._writer
        if writer is None:
            raise AppError(ErrorCode.STORE_UNAVAILABLE, "the store is closed")
        async with self._write_lock:
            with self._as_unavailable(writer):
                await writer.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteConnection(writer)
            except BaseException:
                if writer is self._writer:
                    await writer.execute("ROLLBACK")
                    raise
                # Closed under the transaction: nothing was committed.
                raise AppError(ErrorCode.STORE_UNAVAILABLE, "the store closed") from None
            with self._as_unavailable(writer):
                try:
                    await writer.execute("COMMIT")
                except sqlite3.OperationalError:
                    await writer.execute("ROLLBACK")
                    raise

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[Connection]:
        reader = self._reader
        if reader is None:
            raise AppError(ErrorCode.STORE_UNAVAILABLE, "the store is closed")
        with self._as_unavailable(reader):
            yield _SqliteConnection(reader)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        if self._reader is None:
            raise AppError(ErrorCode.STORE_UNAVAILABLE, "the store is closed")
        # A connection of its own: the shared reader must not see this transaction's old state.
        conn = await self._connect()
        try:
            with self._as_unavailable(conn):
                await conn.execute("BEGIN")
                # A WAL read transaction takes its snapshot at its first read.
                await conn.execute_fetchall("SELECT COUNT(*) FROM sqlite_master")
            yield _SqliteConnection(conn)
        finally:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.execute("ROLLBACK")
            await conn.close()

    def migration_lock(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return self.transaction()

    async def run_script(self, conn: Connection, script: str) -> None:
        for statement in split_statements(script):
            await conn.execute(statement)


@functools.lru_cache(maxsize=512)
def _mysql_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def _mysql_errors(exc: BaseException) -> BaseException:
    if isinstance(exc, pymysql.err.IntegrityError):
        return IntegrityError(str(exc))
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError | OSError):
        return unavailable(exc)
    return exc


class _LoggingCursor(aiomysql.Cursor):  # type: ignore[misc]
    """Server warnings go to the log instead of becoming Python warnings."""

    async def _show_warnings(self, conn: Any) -> None:
        if self._result and self._result.has_next:
            return
        for level, code, message in await conn.show_warnings() or ():
            log.log(
                logging.DEBUG if level == "Note" else logging.WARNING,
                "mysql %s %s: %s",
                level,
                code,
                message,
            )


class _MysqlConnection:
    dialect = "mysql"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> tuple[int, int]:
        try:
            async with self._conn.cursor() as cursor:
                await cursor.execute(_mysql_sql(sql), tuple(params))
                return int(cursor.rowcount), int(cursor.lastrowid or 0)
        except Exception as exc:
            raise _mysql_errors(exc) from exc

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        try:
            async with self._conn.cursor() as cursor:
                await cursor.executemany(_mysql_sql(sql), [tuple(r) for r in rows])
        except Exception as exc:
            raise _mysql_errors(exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        try:
            async with self._conn.cursor() as cursor:
                await cursor.execute(_mysql_sql(sql), tuple(params))
                row = await cursor.fetchone()
                return tuple(row) if row is not None else None
        except Exception as exc:
            raise _mysql_errors(exc) from exc

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            async with self._conn.cursor() as cursor:
                await cursor.execute(_mysql_sql(sql), tuple(params))
                return [tuple(row) for row in await cursor.fetchall()]
        except Exception as exc:
            raise _mysql_errors(exc) from exc


class MysqlDatabase:
    """MariaDB/MySQL through an aiomysql pool, READ COMMITTED, UTC."""

    dialect = "mysql"

    def __init__(self, url: str, pool_size: int = 10) -> None:
        parts = urlsplit(url)
        self._kwargs: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "db": parts.path.strip("/"),
            "charset": "utf8mb4",
            "autocommit": True,
            "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "connect_timeout": 5,
            "cursorclass": _LoggingCursor,
        }
        self._pool_size = pool_size
        self._pool: Any = None

    async def open(self) -> None:
        try:
            self._pool = await aiomysql.create_pool(
                minsize=1, maxsize=self._pool_size, pool_recycle=3600, **self._kwargs
            )
        except Exception as exc:
            raise _mysql_errors(exc) from exc

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise AppError(ErrorCode.STORE_UNAVAILABLE, "the store is closed")
        try:
            conn = await self._pool.acquire()
        except Exception as exc:
            raise _mysql_errors(exc) from exc
        try:
            yield conn
        finally:
            self._pool.release(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._acquire() as conn:
            try:
                await conn.begin()
            except Exception as exc:
                conn.close()
                raise _mysql_errors(exc) from exc
            try:
                yield _MysqlConnection(conn)
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.rollback()
                raise
            try:
                await conn.commit()
            except Exception as exc:
                conn.close()
                raise _mysql_errors(exc) from exc

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[Connection]:
        async with self._acquire() as conn:
            yield _MysqlConnection(conn)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        async with self._acquire() as conn:
            wrapped = _MysqlConnection(conn)
            # For the next transaction only; the session stays READ COMMITTED.
            await wrapped.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            await wrapped.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                yield wrapped
            finally:
                try:
                    await conn.rollback()
                except Exception:
                    conn.close()  # not returned to the pool half-way through a transaction

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[Connection]:
        async with self._acquire() as conn:
            wrapped = _MysqlConnection(conn)
            row = await wrapped.fetchone("SELECT GET_LOCK('configcenter_migrate', 60)")
            if not row or row[0] != 1:
                raise AppError(ErrorCode.STORE_UNAVAILABLE, "could not take the migration lock")
            try:
                yield wrapped
            finally:
                await wrapped.fetchone("SELECT RELEASE_LOCK('configcenter_migrate')")

    async def run_script(self, conn: Connection, script: str) -> None:
        for statement in split_statements(script):
            await conn.execute(statement)


def open_database(url: str, sqlite_path: Path | None, pool_size: int) -> Database:
    """The adapter for a store URL."""
    if sqlite_path is not None:
        return SqliteDatabase(sqlite_path)
    return MysqlDatabase(url, pool_size)
