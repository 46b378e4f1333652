"""The bundled client when its server's store is restored from an older backup."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from devservices import REPO_ROOT, ServerProcess
from server.client import ConfigClient
from tests.client.helpers import FAST, Admin, sqlite_url, wait_until


def configcenter(store_url: str, *args: str) -> None:
    """Run the command on a store; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "CONFIGCENTER_STORE_URL": store_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


async def test_a_client_ahead_of_a_restored_server_keeps_its_version_until_one_passes_it(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path / "cc.db")
    server = ServerProcess(tmp_path / "server", url)
    admin = Admin(server)
    cache = tmp_path / "cache"
    backup = tmp_path / "at-5.gz"
    await asyncio.to_thread(server.start)
    try:
        app = await asyncio.to_thread(admin.new_app)
        _, token = await asyncio.to_thread(admin.token, f"read:{app}")
        for n in range(1, 6):
            await admin.apublish(app, {"k": f"v{n}"})
        await asyncio.to_thread(configcenter, url, "backup", str(backup))
        for n in (6, 7):
            await admin.apublish(app, {"k": f"v{n}"})
        async with ConfigClient(server.url, token, app, "prod", cache, **FAST) as client:
            assert client.version == 7
    finally:
        await asyncio.to_thread(server.stop)

    # Restored keeping the backup's versions: the server offers 5, which the client refuses.
    await asyncio.to_thread(
        configcenter, url, "restore", str(backup), "--replace", "--version-floor", "0"
    )
    await asyncio.to_thread(server.start)
    try:
        client = ConfigClient(server.url, token, app, "prod", cache, **FAST)
        async with client:
            await wait_until(lambda: client.connected, "the subscription")
            assert (client.version, client.get("k")) == (7, "v7")
            # The operator moves the env above what clients hold, with the server stopped.
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(
                configcenter, url, "restore", str(backup), "--replace", "--version-floor", "7"
            )
            await asyncio.to_thread(server.start)
            await wait_until(lambda: client.version == 8, "version 8 after the restore")
            assert client.get("k") == "v5"
    finally:
        await asyncio.to_thread(server.stop)
