"""An admin that publishes to a real server over HTTP, client options, and polling."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from devservices import ServerProcess

_names = itertools.count(1)


class Options(TypedDict):
    """ConfigClient keyword options."""

    reconnect_delay: float
    reconnect_max_delay: float
    start_timeout: float


def fast(start_timeout: float = 10.0) -> Options:
    """Fast reconnects keep tests short; the defaults (0.5 s doubling to 30 s) are for services."""
    return {"reconnect_delay": 0.05, "reconnect_max_delay": 0.5, "start_timeout": start_timeout}


FAST = fast()

# Cluster replicas with short lease and repair periods, as tests/cluster does: a killed
# replica's leases expire within 2 s.
CLUSTER_ENV = {
    "CONFIGCENTER_ETCD_LOCK_TTL": "2",
    "CONFIGCENTER_ETCD_REFRESH_INTERVAL": "1.0",
}


class Admin:
    """Drives one server as admin over HTTP: apps, items, releases, tokens."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        token = self.server.admin_token()
        status, answer = self.server.request(
            method, path, body, headers={"Authorization": f"Bearer {token}"}
        )
        assert status == expect, f"{method} {path}: HTTP {status} {answer!r}"
        return answer

    def new_app(self, env: str = "prod") -> str:
        """A fresh app with one env; every test gets its own so a shared server stays clean."""
        name = f"app{next(_names)}"
        self.call("POST", "/api/v1/apps", {"name": name, "envs": [env]}, expect=201)
        return name

    def publish(
        self,
        app: str,
        set_items: dict[str, str] | None = None,
        delete: list[str] | None = None,
        env: str = "prod",
    ) -> int:
        """Edit the draft and publish it; returns the new version."""
        edits = {"set": set_items or {}, "delete": delete or []}
        self.call("PATCH", f"/api/v1/apps/{app}/envs/{env}/items", edits)
        release = self.call(
            "POST", f"/api/v1/apps/{app}/envs/{env}/releases", {"comment": "test"}, expect=201
        )
        return int(release["version"])

    def token(self, *scopes: str) -> tuple[int, str]:
        """A new API token: (id, secret)."""
        name = f"svc{next(_names)}"  # names are unique among live tokens
        answer = self.call("POST", "/api/v1/tokens", {"name": name, "scopes": list(scopes)}, 201)
        return int(answer["id"]), str(answer["token"])

    def revoke(self, token_id: int) -> None:
        """Revoke a token (closes its WebSockets)."""
        self.call("DELETE", f"/api/v1/tokens/{token_id}", expect=204)

    async def apublish(
        self,
        app: str,
        set_items: dict[str, str] | None = None,
        delete: list[str] | None = None,
    ) -> int:
        """publish() off the event loop."""
        return await asyncio.to_thread(self.publish, app, set_items, delete)


def sqlite_url(path: Path) -> str:
    """A store URL for an SQLite file."""
    return f"sqlite:///{path.resolve()}"


async def wait_until(predicate: Callable[[], bool], what: str, within: float = 20.0) -> None:
    """Poll predicate until true; fail the test after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.02)
