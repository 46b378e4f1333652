"""The store: a database plus its queries, opened and migrated at start."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from server.config import Config
from server.store.db import Database, open_database
from server.store.migrations import migrate
from server.store.queries import Queries


class Store:
    """Transactions and reads over SQLite or MariaDB/MySQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def from_config(cls, config: Config) -> Store:
        """The store a config names."""
        return cls(open_database(config.store.url, config.sqlite_path(), config.store.pool_size))

    @property
    def dialect(self) -> str:
        """sqlite or mysql."""
        return self.db.dialect

    async def open(self, run_migrations: bool = True) -> None:
        """Connect and bring the schema up to date."""
        try:
            await self.db.open()
            if run_migrations:
                await migrate(self.db)
        except BaseException:
            await self.db.close()
            raise

    async def close(self) -> None:
        """Disconnect."""
        await self.db.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        """A write transaction: all of it commits or none of it."""
        async with self.db.transaction() as conn:
            yield Queries(conn)

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[Queries]:
        """Queries for reading."""
        async with self.db.reader() as conn:
            yield Queries(conn)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Queries]:
        """Queries inside one read-only transaction: every table as of one moment."""
        async with self.db.snapshot() as conn:
            yield Queries(conn)

    async def ping(self) -> None:
        """Raise when the store does not answer."""
        async with self.db.reader() as conn:
            await conn.fetchone("SELECT 1")
