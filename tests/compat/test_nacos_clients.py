"""The real Nacos clients against a real server: the Python SDK (nacos-sdk-python) and the
Node client (npm `nacos`), each in a process of its own driven by a small script that prints
what the client sees. They read, are told of a publish, sign in with a user and with an API
token, ride out a server restart, and get their error for a wrong credential."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devservices import ServerProcess, free_port
from devservices.process import REPO_ROOT
from tests.types import ServerProcessFactory

HERE = Path(__file__).parent
NODE = shutil.which("node")
WITHIN = 30.0
USER, USER_PASSWORD = "alice", "correct-horse-battery"


class Driven:
    """One client process; its JSON lines read as they come."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        with (cwd / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.cwd = cwd
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next_event(self, within: float = WITHIN) -> dict[str, Any]:
        """The next content or error it printed (warnings are skipped)."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing from the client within {within} s: {self.stderr()}")
            try:
                event = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if "warning" not in event:
                return event

    def content_becomes(self, expected: str, within: float = WITHIN) -> None:
        """Wait until it prints expected as the content (earlier contents may come first)."""
        deadline = time.monotonic() + within
        seen = []
        while time.monotonic() < deadline:
            try:
                event = self.next_event(deadline - time.monotonic())
            except AssertionError:
                break
            seen.append(event)
            if event.get("content") == expected:
                return
        raise AssertionError(f"content never became {expected!r}; saw {seen}; {self.stderr()}")

    def stderr(self) -> str:
        return (self.cwd / "stderr.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


CLIENTS = ["python", "node"]


@pytest.fixture
def drive(tmp_path: Path) -> Iterator[Any]:
    """Factory: drive(kind, server, data_id, group, mode, username, password) -> Driven."""
    started: list[Driven] = []

    def start(
        kind: str,
        server: ServerProcess,
        data_id: str,
        mode: str,
        username: str | None = None,
        password: str | None = None,
    ) -> Driven:
        cwd = tmp_path / f"{kind}-client{len(started) + 1}"
        env = {"NACOS_CACHE_DIR": str(cwd / "cache"), "NODE_PATH": str(REPO_ROOT / "node_modules")}
        if username is not None:
            env |= {"NACOS_USERNAME": username, "NACOS_PASSWORD": password or ""}
        if kind == "python":
            script = [sys.executable, str(HERE / "nacos_python_client.py")]
        else:
            # scripts/setup installs Node: without it this fails, never skips.
            assert NODE is not None, "node is not installed (scripts/setup installs it)"
            script = [NODE, str(HERE / "nacos_node_client.js")]
            # The Node client shares one connection between every client process of the
            # machine (cluster-client: a leader on port 7777, the others its followers): a
            # port of its own keeps this client from reading through another test's leader.
            env["NODE_CLUSTER_CLIENT_PORT"] = str(free_port())
        driven = Driven([*script, str(server.port), data_id, "prod", mode], cwd, env)
        started.append(driven)
        return driven

    try:
        yield start
    finally:
        for driven in started:
            driven.stop()


def call(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    status, answer = server.request(
        method, path, body, headers={"Authorization": f"Bearer {server.admin_token()}"}
    )
    assert status < 300, (status, answer)
    return answer


def publish(server: ServerProcess, items: dict[str, str]) -> None:
    call(server, "PATCH", "/api/v1/apps/shop/envs/prod/items", {"set": items})
    call(server, "POST", "/api/v1/apps/shop/envs/prod/releases", {"comment": ""})


@pytest.fixture
def shop(server_process: ServerProcessFactory, sqlite_url: str) -> tuple[ServerProcess, str]:
    """A server with app shop, env prod published (k=v1), a viewer alice; a read token."""
    server = server_process(sqlite_url)
    call(server, "POST", "/api/v1/apps", {"name": "shop", "envs": ["prod"]})
    publish(server, {"k": "v1"})
    user = {"name": USER, "password": USER_PASSWORD, "roles": {"shop": "viewer"}, "admin": False}
    call(server, "POST", "/api/v1/users", user)
    token = call(server, "POST", "/api/v1/tokens", {"name": "reader", "scopes": ["read:shop"]})
    return server, str(token["token"])


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_client_signed_in_as_a_user_reads_and_is_told_of_each_publish_across_a_restart(
    kind: str, shop: tuple[ServerProcess, str], drive: Any
) -> None:
    server, _ = shop
    watcher = drive(kind, server, "shop.yaml", "watch", USER, USER_PASSWORD)
    assert watcher.next_event() == {"content": 'k: "v1"\n'}
    publish(server, {"k": "v2"})
    watcher.content_becomes('k: "v2"\n')

    server.restart()
    publish(server, {"k": "v3"})
    watcher.content_becomes('k: "v3"\n')


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_client_signs_in_with_an_api_token_as_the_password_of_token(
    kind: str, shop: tuple[ServerProcess, str], drive: Any
) -> None:
    server, token = shop
    watcher = drive(kind, server, "shop", "watch", "token", token)
    assert watcher.next_event() == {"content": "k=v1\n"}
    publish(server, {"k": "v2"})
    watcher.content_becomes("k=v2\n")


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_client_with_a_wrong_credential_gets_its_403(
    kind: str, shop: tuple[ServerProcess, str], drive: Any
) -> None:
    server, _ = shop
    for username, password in (("token", "cc_not-a-token"), (None, None)):
        reader = drive(kind, server, "shop", "get", username, password)
        event = reader.next_event()
        assert "error" in event, event
        assert "403" in event["error"] or "privilege" in event["error"], event
        reader.process.wait(WITHIN)
        assert reader.process.returncode == 1
