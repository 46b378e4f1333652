"""scripts/cluster up | status | down gives a working 3-replica cluster and stops it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devservices import REPO_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.etcd, pytest.mark.mariadb]

SCRIPT = REPO_ROOT / "scripts" / "cluster"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=240, check=False
    )


def call(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def test_up_status_down(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    started = run("up", "--dir", str(directory))
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads((directory / "state.json").read_text())
    try:
        first = state["replicas"][0]["url"]
        token = call(
            "POST",
            f"{first}/api/v1/login",
            {"username": "admin", "password": state["admin_password"]},
        )["token"]
        # Replicas register and members answer their probes (1 s each) a moment apart on a
        # loaded machine: wait for the whole picture, then check it.
        deadline = time.monotonic() + 20
        while True:
            view = call("GET", f"{first}/api/v1/cluster", token=token)
            if _settled(view) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sorted(r["address"] for r in view["replicas"]) == sorted(
            r["url"] for r in state["replicas"]
        )
        assert len(view["etcd_members"]) == 3
        assert all(m["healthy"] for m in view["etcd_members"]), view["etcd_members"]
        assert sum(m["leader"] for m in view["etcd_members"]) == 1
        deadline = time.monotonic() + 20
        while True:
            # status exits 1 while a replica's /readyz is not 200
            shown = run("status", "--dir", str(directory))
            if shown.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "replicas (3)" in shown.stdout
        assert "etcd members (3)" in shown.stdout
    finally:
        stopped = run("down", "--dir", str(directory))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not directory.exists()
    with pytest.raises(urllib.error.URLError):
        call("GET", f"{first}/healthz")


def _settled(view: dict[str, Any]) -> bool:
    """Three replicas registered, three healthy etcd members, one of them the leader."""
    members = view["etcd_members"]
    return (
        len(view["replicas"]) == 3
        and len(members) == 3
        and all(m["healthy"] for m in members)
        and sum(m["leader"] for m in members) == 1
    )
