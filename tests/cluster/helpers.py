"""Cluster test helpers: the cluster of a module, clients of its replicas, and polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devservices import EtcdCluster, ServerProcess
from server.coord.etcd_keys import Keys
from server.coord.etcd_lock import FAULT_DISTRIBUTE_HOLD_ENV, FAULT_HOLD_ENV

LOCK_TTL = 2
REFRESH_INTERVAL = 1.0
PREFIX = "/configcenter"
KEYS = Keys(PREFIX)
CLUSTER_ENV = {
    "CONFIGCENTER_ETCD_LOCK_TTL": str(LOCK_TTL),
    "CONFIGCENTER_ETCD_REFRESH_INTERVAL": str(REFRESH_INTERVAL),
    "CONFIGCENTER_ETCD_PREFIX": PREFIX,
}


@dataclass
class Cluster:
    """The etcd cluster, the store and the replicas of one test module."""

    etcd: EtcdCluster
    store_url: str
    base_dir: Path
    replicas: list[ServerProcess] = field(default_factory=list)
    extras: list[ServerProcess] = field(default_factory=list)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A replica's environment: the cluster settings, etcd's TLS and user, then extra."""
        security = {} if self.etcd.security is None else self.etcd.security.server_env()
        return {**CLUSTER_ENV, **security, **(extra or {})}

    def new_replica(self, env: dict[str, str] | None = None) -> ServerProcess:
        """Another replica (stopped at module teardown)."""
        server = ServerProcess(
            self.base_dir / f"replica{len(self.replicas) + len(self.extras) + 1}",
            self.store_url,
            etcd_endpoints=self.etcd.client_endpoints,
            env=self.env(env),
        )
        server.start()
        self.extras.append(server)
        return server

    def faulty_replica(self, hold_lock_seconds: float) -> ServerProcess:
        """A replica that holds every publish lock this long before writing the store."""
        return self.new_replica({FAULT_HOLD_ENV: str(hold_lock_seconds)})

    def late_distributor(self, hold_seconds: float) -> ServerProcess:
        """A replica that, holding the lock, waits this long between the store's commit and
        the etcd write."""
        return self.new_replica({FAULT_DISTRIBUTE_HOLD_ENV: str(hold_seconds)})


class Replica:
    """An HTTP and WebSocket client of one replica, signed in as admin."""

    def __init__(self, server: ServerProcess, session: aiohttp.ClientSession, token: str) -> None:
        self.server = server
        self.session = session
        self.token = token

    @property
    def url(self) -> str:
        return self.server.url

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            await response.read()
            return response.status, None

    async def create_app(self, app: str, env: str = "prod") -> None:
        status, body = await self.call("POST", "/api/v1/apps", {"name": app, "envs": [env]})
        assert status == 201, body

    async def set_items(self, app: str, items: dict[str, str], env: str = "prod") -> None:
        status, body = await self.call(
            "PATCH", f"/api/v1/apps/{app}/envs/{env}/items", {"set": items}
        )
        assert status == 200, body

    async def publish(self, app: str, env: str = "prod") -> tuple[int, Any]:
        return await self.call("POST", f"/api/v1/apps/{app}/envs/{env}/releases", {"comment": ""})

    async def config_version(self, app: str, env: str = "prod") -> int:
        status, body = await self.call("GET", f"/api/v1/apps/{app}/envs/{env}/config")
        return int(body["version"]) if status == 200 else 0

    async def store_versions(self, app: str, env: str = "prod") -> list[int]:
        """Every release version in the store, oldest first."""
        status, body = await self.call("GET", f"/api/v1/apps/{app}/envs/{env}/releases?limit=500")
        assert status == 200, body
        return sorted(r["version"] for r in body["releases"])

    async def cluster_view(self) -> dict[str, Any]:
        status, body = await self.call("GET", "/api/v1/cluster")
        assert status == 200, body
        result: dict[str, Any] = body
        return result

    async def watch(
        self, app: str, env: str = "prod", token: str | None = None
    ) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(
            f"{self.url}/api/v1/watch?app={app}&env={env}",
            headers={"Authorization": f"Bearer {token or self.token}"},
        )


async def until(
    condition: Callable[[], Any], within: float = 15.0, what: str = "condition", every: float = 0.05
) -> Any:
    """Await (or call) condition until it returns something truthy; fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within} s")
        await asyncio.sleep(every)


async def last_version(
    ws: aiohttp.ClientWebSocketResponse, target: int, within: float = 15.0
) -> int:
    """Read release messages until one has version >= target; returns the last version seen."""
    deadline = time.monotonic() + within
    seen = 0
    while seen < target:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"the subscriber saw version {seen}, not {target}, within {within} s")
        message = await ws.receive(timeout=remaining)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        data = message.json()
        assert data["type"] == "release", data
        assert data["version"] > seen, "versions must only go up"
        seen = data["version"]
    return seen


async def close_frame(ws: aiohttp.ClientWebSocketResponse, within: float) -> aiohttp.WSMessage:
    """The next message, expected to be the server's close frame.

    A heartbeat ping the server sent just before closing makes aiohttp answer it (autoping)
    on a transport that is already closing, and raise; the close frame is next in line.
    """
    try:
        return await ws.receive(timeout=within)
    except aiohttp.ClientConnectionResetError:
        return await ws.receive(timeout=within)
