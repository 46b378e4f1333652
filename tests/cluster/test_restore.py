"""`configcenter backup` and `restore` under two running replicas (MariaDB, 3-member etcd).

The store is restored to a backup taken at version 5 while subscribers hold version 7: every
subscriber, raw WebSocket or bundled client, receives version 8 with the backup's items and
never sees 5.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devservices import EtcdCluster, MariaDBServer, ServerProcess
from server.client import ConfigClient
from tests.cluster.helpers import CLUSTER_ENV, Replica, until

pytestmark = [pytest.mark.cluster, pytest.mark.etcd]

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def two_replicas(
    tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDBServer
) -> Iterator[list[ServerProcess]]:
    """Two replicas on one MariaDB database and a 3-member etcd cluster."""
    base = tmp_path_factory.mktemp("restore-cluster")
    database = f"restore_{uuid.uuid4().hex[:12]}"
    with EtcdCluster(3, base / "etcd") as etcd:
        url = mariadb.create_database(database)
        servers = [
            ServerProcess(
                base / f"replica{n}", url, etcd_endpoints=etcd.client_endpoints, env=CLUSTER_ENV
            )
            for n in (1, 2)
        ]
        try:
            for server in servers:
                server.start()
            yield servers
        finally:
            for server in servers:
                server.stop()
            mariadb.drop_database(database)


@pytest.fixture
async def replicas(two_replicas: list[ServerProcess]) -> AsyncIterator[list[Replica]]:
    """Clients of the two replicas, signed in as admin."""
    token = await asyncio.to_thread(two_replicas[0].admin_token)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield [Replica(server, session, token) for server in two_replicas]


def configcenter(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The configcenter command on the replicas' store."""
    env = {**os.environ, "CONFIGCENTER_STORE_URL": store_url}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def record_releases(ws: aiohttp.ClientWebSocketResponse, into: list[dict[str, Any]]) -> None:
    """Append every release message the socket receives."""
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            data = message.json()
            if data.get("type") == "release":
                into.append(data)


@pytest.mark.parametrize(
    "floor_args", [["--version-floor", "0"], []], ids=["refresh-moves-it", "restore-moves-it"]
)
async def test_subscribers_at_7_get_8_with_the_backups_items_after_a_restore_to_5(
    two_replicas: list[ServerProcess],
    replicas: list[Replica],
    tmp_path: Path,
    floor_args: list[str],
) -> None:
    a, b = replicas
    app = f"restore-{uuid.uuid4().hex[:8]}"
    await a.create_app(app)
    for n in range(1, 6):
        await (a if n % 2 else b).set_items(app, {"k": f"v{n}"})
        status, body = await (a if n % 2 else b).publish(app)
        assert (status, body["version"]) == (201, n)
    path = tmp_path / "at-5.backup.gz"
    done = await asyncio.to_thread(configcenter, a.server.store_url, "backup", str(path))
    assert done.returncode == 0, done.stderr
    for n in (6, 7):
        await a.set_items(app, {"k": f"v{n}"})
        assert (await a.publish(app))[0] == 201

    messages: list[list[dict[str, Any]]] = [[], []]
    sockets = [await r.watch(app) for r in replicas]
    readers = [
        asyncio.create_task(record_releases(ws, into))
        for ws, into in zip(sockets, messages, strict=True)
    ]
    changes: list[int] = []
    client = ConfigClient(b.url, b.token, app, "prod")
    try:
        await client.start()
        client.on_change(lambda change: changes.append(change.version))
        await until(lambda: client.version == 7, what="the client at 7")
        await until(lambda: all(m and m[-1]["version"] == 7 for m in messages), what="7 pushed")

        done = await asyncio.to_thread(
            configcenter, a.server.store_url, "restore", str(path), "--replace", *floor_args
        )
        assert done.returncode == 0, done.stderr

        await until(lambda: client.version == 8, what="the client at 8")
        assert client.get("k") == "v5"
        await until(lambda: all(m[-1]["version"] == 8 for m in messages), what="8 pushed")
    finally:
        await client.close()
        for ws in sockets:
            await ws.close()
        for reader in readers:
            await reader
    for received in messages:
        versions = [m["version"] for m in received]
        assert versions == sorted(set(versions)), "versions must only go up"
        assert 5 not in versions[1:]
        assert received[-1]["items"] == {"k": "v5"}
    assert changes == [8]
    for replica in replicas:
        assert await replica.config_version(app) == 8
    assert await a.store_versions(app) == [1, 2, 3, 4, 5, 8]
    # Publishing goes on above it.
    await b.set_items(app, {"k": "after"})
    status, body = await b.publish(app)
    assert (status, body["version"]) == (201, 9)


def test_restore_of_a_damaged_file_is_one_line_and_exit_code_1(
    two_replicas: list[ServerProcess], tmp_path: Path
) -> None:
    path = tmp_path / "b.gz"
    store_url = two_replicas[0].store_url
    assert configcenter(store_url, "backup", str(path)).returncode == 0
    path.write_bytes(path.read_bytes()[:-10])
    done = configcenter(store_url, "restore", str(path), "--replace")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("configcenter: invalid_backup: ")
    done = configcenter(store_url, "restore", str(tmp_path / "missing.gz"))
    assert done.returncode == 1
    assert "invalid_backup" in done.stderr
    done = configcenter(store_url, "restore", str(path), "--version-floor", "-3")
    assert done.returncode == 2
