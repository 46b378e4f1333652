"""Fixtures that start real MariaDB, etcd and configcenter processes on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from devservices import EtcdCluster, MariaDBServer, ServerProcess
from tests.types import ServerProcessFactory

# Tests that use these fixtures (directly or through others) get the marker, so that
# `-m "not etcd"` or `-m "not mariadb"` deselects them.
_FIXTURE_MARKERS = {
    "mariadb": "mariadb",
    "mysql_url": "mariadb",
    "etcd_single": "etcd",
    "etcd_cluster": "cluster",
}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """Turn SIGTERM (as `timeout` sends) into Ctrl-C, so fixtures still stop their services."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


_SUMMARY_MARKERS = ("mariadb", "etcd", "cluster", "browser")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show how many tests ran against each real component (a skip would hide a missing one)."""
    counts = {marker: {"passed": 0, "failed": 0, "skipped": 0} for marker in _SUMMARY_MARKERS}
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome != "skipped":
                continue
            for marker in _SUMMARY_MARKERS:
                if marker in getattr(report, "keywords", {}):
                    counts[marker][outcome] += 1
    parts = [
        f"{marker}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
        for marker, c in counts.items()
    ]
    terminalreporter.write_line("real components: " + " | ".join(parts))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the real services their fixtures start."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in names:
                item.add_marker(marker)
        if "etcd_cluster" in names:
            item.add_marker("etcd")


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """One throwaway MariaDB for the whole session; fails loudly if it cannot start.

    Its files live in memory where the machine has a tmpfs: every MariaDB test migrates a
    fresh schema, and InnoDB syncs each DDL statement (0.43 s a schema on disk, 0.16 s in
    /dev/shm on this machine)."""
    with tempfile.TemporaryDirectory(prefix="configcenter-mariadb-", dir=_memory_dir()) as base:
        with MariaDBServer(Path(base)) as server:
            yield server


def _memory_dir() -> str | None:
    """/dev/shm when it is a writable directory, else the usual temp dir (None)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


@pytest.fixture
def mysql_url(mariadb: MariaDBServer) -> Iterator[str]:
    """A fresh, empty MariaDB database (dropped afterwards): mysql://root@127.0.0.1:PORT/NAME."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = mariadb.create_database(name)
    try:
        yield url
    finally:
        mariadb.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """sqlite:///<tmp_path>/store.db (the file does not exist yet)."""
    return f"sqlite:///{tmp_path}/store.db"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh store URL, once on SQLite and once on MariaDB (started only when needed)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "mysql_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def etcd_single(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A one-member etcd, healthy, stopped afterwards."""
    with EtcdCluster(1, tmp_path / "etcd") as cluster:
        yield cluster


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A three-member etcd cluster, all healthy, stopped afterwards."""
    with EtcdCluster(3, tmp_path / "etcd-cluster") as cluster:
        yield cluster


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcessFactory]:
    """Factory: server_process(store_url, **ServerProcess kwargs) -> a started server.

    Every server it started is stopped at teardown.
    """
    started: list[ServerProcess] = []

    def start(store_url: str, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server{len(started) + 1}", store_url, **kwargs)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        errors: list[BaseException] = []
        for server in reversed(started):
            try:
                server.stop()
            except Exception as exc:  # stop the others before reporting
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(autouse=True)
async def _fail_on_lingering_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running on its loop (as Home Assistant does)."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    lingering = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    if not lingering:
        return
    described = ", ".join(repr(t) for t in lingering)
    for task in lingering:
        task.cancel()
    await asyncio.wait(lingering, timeout=5)
    pytest.fail(f"test left asyncio tasks running (now cancelled): {described}", pytrace=False)
