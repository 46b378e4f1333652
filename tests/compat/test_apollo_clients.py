"""The real Apollo clients against a real server: apollo-python (PyPI, signs with an access key)
and ctrip-apollo (npm, which sends no header of its own: a token as the URL's password, which
it sends as HTTP Basic, or anonymous read). Each reads, is notified of a publish, recovers
while the server restarts, and is refused a wrong credential."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devservices import ServerProcess
from devservices.process import http_request
from tests.types import ServerProcessFactory

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 30.0
WAITING = re.compile(r"^configcenter_long_polls_waiting (\S+)$", re.MULTILINE)
APP = "/api/v1/apps/shop"
ENV = f"{APP}/envs/prod"


class Client:
    """A client's process: its JSON lines collected as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        # A clean environment: apollo-python reads APP_ID, IDC, APOLLO_META, … from it.
        env = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", "HOME": str(cwd)}
        self.process = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, wanted: Callable[[Any], bool], what: str, timeout: float = WAIT) -> Any:
        """The first JSON record (after those already taken) that wanted accepts."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = "\n".join(self.seen[-30:])
                raise AssertionError(f"no {what} within {timeout} s; the client said:\n{tail}")
            try:
                line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            self.seen.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if wanted(record):
                return record

    def wait_for_text(self, text: str, timeout: float = WAIT) -> None:
        """Until a line (JSON or log) contains text."""
        if any(text in line for line in self.seen):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(
            f"no line with {text!r}; the client said:\n" + "\n".join(self.seen[-30:])
        )

    def stop(self) -> None:
        """Kill it (neither client has a way to stop its long poll at once)."""
        self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Callable[[list[str]], Client]]:
    """Start client processes; every one is killed at teardown."""
    started: list[Client] = []

    def start(args: list[str]) -> Client:
        client = Client(args, tmp_path)
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


def call(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    """One admin request that must succeed; its JSON body."""
    status, answer = server.request(
        method, path, body, headers={"Authorization": f"Bearer {server.admin_token()}"}
    )
    assert status < 300, (method, path, status, answer)
    return answer


def wait_for_long_poll(server: ServerProcess) -> None:
    """Until the server holds a long poll (the client's): a publish now is what it is told of."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        status, raw = http_request("GET", server.port, "/metrics", timeout=5.0)
        waiting = WAITING.search(raw.decode("utf-8")) if status == 200 else None
        if waiting is not None and float(waiting.group(1)) >= 1:
            return
        time.sleep(0.1)
    raise AssertionError(f"the server held no long poll within {WAIT} s")


def publish(server: ServerProcess, items: dict[str, str]) -> int:
    """Set items in shop/prod and publish them; the version."""
    call(server, "PATCH", f"{ENV}/items", {"set": items})
    version: int = call(server, "POST", f"{ENV}/releases", {"comment": "test"})["version"]
    return version


@pytest.fixture
def server(server_process: ServerProcessFactory, sqlite_url: str) -> ServerProcess:
    """A server with app shop, env prod published with pool=5, and a short Apollo hold."""
    started = server_process(sqlite_url, env={"CONFIGCENTER_COMPAT_APOLLO_HOLD_SECONDS": "5"})
    call(started, "POST", "/api/v1/apps", {"name": "shop", "envs": ["prod"]})
    publish(started, {"pool": "5", "mode": "blue"})
    return started


def told(record: Any, key: str, value: str) -> bool:
    """True when apollo-python's listener was told key now has value. An "add" when the
    publish came before its first long poll answered (its first notification compares with
    nothing), else an "update"."""
    change = record.get("change")
    return change is not None and change[0] in ("add", "update") and change[2:] == [key, value]


def python_client(
    start: Callable[[list[str]], Client], server: ServerProcess, tmp_path: Path, secret: str
) -> Client:
    cache = tmp_path / "apollo-cache"
    cache.mkdir(exist_ok=True)
    script = str(HERE / "apollo_python_client.py")
    args = [sys.executable, script, server.url, "shop", "prod", secret, "10.1.0.7", str(cache)]
    return start([*args, "pool,mode"])


def node_client(start: Callable[[list[str]], Client], host: str) -> Client:
    return start(["node", str(HERE / "ctrip_apollo_client.js"), host, "shop", "prod", "node-1"])


def test_apollo_python_reads_signed_is_notified_and_recovers_a_restart(
    server: ServerProcess, clients: Callable[[list[str]], Client], tmp_path: Path
) -> None:
    secret = call(server, "POST", f"{APP}/access-keys")["secret"]
    client = python_client(clients, server, tmp_path, secret)
    client.wait_for(lambda r: r.get("values") == {"pool": "5", "mode": "blue"}, "first read")

    wait_for_long_poll(server)
    publish(server, {"pool": "6"})
    client.wait_for(lambda r: told(r, "pool", "6"), "notify")

    server.restart()
    wait_for_long_poll(server)
    publish(server, {"pool": "7"})
    client.wait_for(lambda r: told(r, "pool", "7"), "notify")
    status, listed = server.request(
        "GET",
        f"{ENV}/instances?transport=apollo",
        headers={"Authorization": f"Bearer {server.admin_token()}"},
    )
    assert status == 200
    assert "10.1.0.7" in [i["instance"] for i in listed["instances"]]


def test_apollo_python_with_a_wrong_secret_is_refused(
    server: ServerProcess, clients: Callable[[list[str]], Client], tmp_path: Path
) -> None:
    call(server, "POST", f"{APP}/access-keys")
    client = python_client(clients, server, tmp_path, "0" * 32)
    client.wait_for_text("Status code: 401")
    client.wait_for(lambda r: r.get("values") == {"pool": None, "mode": None}, "no values")


def test_ctrip_apollo_reads_with_a_token_is_notified_and_recovers_a_restart(
    server: ServerProcess, clients: Callable[[list[str]], Client]
) -> None:
    token = call(server, "POST", "/api/v1/tokens", {"name": "node", "scopes": ["read:shop"]})
    host = server.url.replace("http://", f"http://apollo:{token['token']}@")
    client = node_client(clients, host)
    client.wait_for(lambda r: r.get("ready") == {"pool": "5", "mode": "blue"}, "first read")

    wait_for_long_poll(server)
    publish(server, {"pool": "6"})
    client.wait_for(lambda r: (r.get("updated") or {}).get("pool") == "6", "notify")

    server.restart()
    wait_for_long_poll(server)
    publish(server, {"pool": "7"})
    client.wait_for(lambda r: (r.get("updated") or {}).get("pool") == "7", "notify")


def test_ctrip_apollo_reads_anonymously_where_the_app_allows_it(
    server: ServerProcess, clients: Callable[[list[str]], Client]
) -> None:
    call(server, "PUT", f"{ENV}/items/password", {"value": "hunter2", "secret": True})
    call(server, "POST", f"{ENV}/releases", {"comment": "secret"})
    call(server, "PATCH", APP, {"anonymous_read": True})
    client = node_client(clients, server.url)
    ready = client.wait_for(lambda r: "ready" in r, "first read")
    assert ready["ready"] == {"pool": "5", "mode": "blue"}  # never the secret


def test_ctrip_apollo_with_a_wrong_token_is_refused(
    server: ServerProcess, clients: Callable[[list[str]], Client]
) -> None:
    client = node_client(clients, server.url.replace("http://", "http://apollo:wrong@"))
    refused = client.wait_for(lambda r: "error" in r, "refusal")
    assert refused["error"] == "FETCH_STATUS_ERROR"
    assert "401" in refused["message"]
