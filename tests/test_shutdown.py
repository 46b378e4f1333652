"""The server process starts, fails and stops cleanly: nothing left hanging."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

from devservices.process import http_request, wait_until
from tests.types import ServerProcessFactory

ROOT = Path(__file__).resolve().parent.parent
WAITING = re.compile(r"^configcenter_long_polls_waiting 1\.0$", re.MULTILINE)


def test_a_failed_start_exits_instead_of_hanging(tmp_path: Path) -> None:
    # A bootstrap password the server refuses fails start-up after the store is open.
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "CONFIGCENTER_STORE_URL": f"sqlite:///{tmp_path}/store.db",
            "CONFIGCENTER_SERVER_PORT": "0",
            "CONFIGCENTER_ADMIN_PASSWORD": "short",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "invalid_password" in result.stderr


def test_sigterm_answers_pending_long_polls(
    server_process: ServerProcessFactory, tmp_path: Path
) -> None:
    server = server_process(f"sqlite:///{tmp_path}/store.db")
    auth = {"Authorization": f"Bearer {server.admin_token()}"}
    assert (
        server.request("POST", "/api/v1/apps", {"name": "shop", "envs": ["prod"]}, headers=auth)[0]
        == 201
    )
    server.request("PUT", "/api/v1/apps/shop/envs/prod/items/a", {"value": "1"}, headers=auth)
    assert (
        server.request("POST", "/api/v1/apps/shop/envs/prod/releases", {}, headers=auth)[0] == 201
    )
    answers: list[int | str] = []

    def poll() -> None:
        try:
            status, _ = server.request(
                "GET",
                "/api/v1/apps/shop/envs/prod/config?after=1&wait=60",
                headers=auth,
                timeout=30,
            )
            answers.append(status)
        except OSError as exc:
            answers.append(type(exc).__name__)

    def held() -> bool:
        status, body = http_request("GET", server.port, "/metrics")
        return status == 200 and WAITING.search(body.decode()) is not None

    poller = threading.Thread(target=poll)
    poller.start()
    # Stop only once the server holds the poll (it would wait up to 60 s).
    wait_until("the long poll held", held, [], 20)
    server.stop()
    poller.join(timeout=30)
    assert not poller.is_alive()
    assert answers == [304]
    assert server.returncode == 0
