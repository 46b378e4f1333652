"""`configcenter backup` and `restore` as an operator runs them, standalone on SQLite."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from devservices import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def configcenter(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command on a store, as `configcenter ...` with CONFIGCENTER_STORE_URL."""
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env={**os.environ, "CONFIGCENTER_STORE_URL": store_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_standalone_store_backed_up_and_restored_serves_the_backup_above_its_old_versions(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/cc.db"
    server = ServerProcess(tmp_path / "server", url)
    server.start()
    try:
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        assert server.request("POST", "/api/v1/apps", {"name": "shop"}, headers=headers)[0] == 201
        items = "/api/v1/apps/shop/envs/default/items/k"
        releases = "/api/v1/apps/shop/envs/default/releases"
        for value in ("one", "two"):
            assert server.request("PUT", items, {"value": value}, headers=headers)[0] in (200, 201)
            assert server.request("POST", releases, {}, headers=headers)[0] == 201
        backup = tmp_path / "backups" / "cc.gz"
        backup.parent.mkdir()
        done = configcenter(url, "backup", str(backup))  # while the server runs
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        assert server.request("PUT", items, {"value": "three"}, headers=headers)[0] == 200
        assert server.request("POST", releases, {}, headers=headers)[0] == 201
    finally:
        server.stop()

    # Without --replace a store with rows is refused, with one line and exit code 1.
    done = configcenter(url, "restore", str(backup))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("configcenter: conflict: ")
    done = configcenter(url, "restore", str(backup), "--replace")
    assert done.returncode == 0, done.stderr
    assert "shop/default: version 2 published again as version 4" in done.stdout

    server.start()
    try:
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        status, body = server.request(
            "GET", "/api/v1/apps/shop/envs/default/config", headers=headers
        )
        assert status == 200
        assert (body["version"], body["items"]) == (4, {"k": "two"})
    finally:
        server.stop()
